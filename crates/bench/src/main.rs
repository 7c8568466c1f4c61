//! `dialtone-bench`: benchmarks of Dialtone, each printing the figures BENCHMARKS.md records.
//!
//! - `ringing`: the signaling server's invite-to-ringing latency and memory per idle connection.
//! - `call`: media in one process: accept to first frame, offer to connected, capture to render, and the
//!   CPU and memory of steady calls.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod call;
mod ringing;

/// Benchmarks of the Dialtone server and engine.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand, Debug)]
enum Bench {
    /// Invite-to-ringing latency and memory per idle connection of dialtone-server.
    Ringing(ringing::RingingArgs),
    /// Media: accept to first frame, offer to connected, capture to render, CPU and RSS of calls.
    Call(call::CallArgs),
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().bench {
        Bench::Ringing(args) => ringing::run(args).await,
        Bench::Call(args) => call::run(args).await,
    }
}
