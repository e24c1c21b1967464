//! `berth-bench`: benchmarks that drive a running berth server and print their figures.
//!
//! - `berth-bench api`: ECS API throughput and latency (see [`api`]).
//! - `berth-bench placement`: the scheduler alone, with a fake in-memory agent (see [`placement`]).
//! - `berth-bench services`: the service controller on simulated capacity (see [`services`]).

mod api;
mod client;
mod placement;
mod report;
mod server;
mod services;
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
    /// Placements per second and p99 latency of the scheduler alone (fake agent, no containers).
    Placement(placement::PlacementArgs),
    /// Time and server CPU for a 500-task service to reach steady state and to roll (fake agent).
    Services(services::ServicesArgs),
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
        Command::Placement(args) => placement::run(args),
        Command::Services(args) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("starting the runtime")?
            .block_on(services::run(args)),
    }
}
