//! `berth-bench`: benchmarks that drive a running berth server and print their figures.
//!
//! - `berth-bench api`: ECS API throughput and latency (see [`api`]).

mod api;
mod client;
mod report;
mod server;
mod stats;
mod workloads;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "berth-bench", version, about = "Benchmarks that drive a berth server and print their figures")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Throughput and p50/p99 latency of the ECS API over SigV4-signed HTTP.
    Api(api::ApiArgs),
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("berth-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; `Ok(false)` when it ran but saw failed calls.
fn run(cli: Cli) -> Result<bool> {
    match cli.command {
        Command::Api(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(args.bench_threads.max(1))
                .enable_all()
                .build()
                .context("starting the runtime")?;
            runtime.block_on(api::run(args))
        }
    }
}
