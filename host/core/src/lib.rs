//! The Halo domain: accounts, roles and the rules around them, as plain Rust.
//!
//! Nothing here does I/O: no clock, socket, disk, sled, axum or wasmtime. Time arrives as an
//! argument ([`Millis`]), so every rule is a unit test away. Start from [`user::User`],
//! [`conversation::Conversation`], [`room::Room`] and [`throttle::Throttle`].
//!
//! Presence aggregation and access levels join them, each in its own module.

pub mod archive;
pub mod contacts;
pub mod conversation;
pub mod federation;
pub mod im;
pub mod message;
pub mod presence;
pub mod rate;
pub mod room;
pub mod serde_util;
pub mod throttle;
pub mod user;

pub use throttle::{Slowdown, SlowdownRule, Throttle, ThrottleRule};
pub use user::{NewUser, ProfileUpdate, Role, User, UserError, Username};

/// Milliseconds since the Unix epoch, as the edge of the system read it from the clock.
pub type Millis = u64;
