//! `halo-bench`: see the library documentation and `BENCHMARKS.md`.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    halo_bench::main_with(halo_bench::Cli::parse())
}
