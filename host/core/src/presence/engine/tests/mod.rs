//! Table tests of the engine: each runs a sequence of (time, input) through [`harness::Sim`]
//! and compares the rendered effects, one a line, with the expected text.
//!
//! `UPDATE_EXPECT=1 cargo test -p halo-core presence::engine` writes what the tests got into
//! their expectations (review the diff before committing it).

mod harness;

mod access;
mod devices;
mod loads;
mod plugins;
mod shards;
mod watch;
