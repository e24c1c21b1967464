//! `berth-bench api`: the ECS API benchmark.
//!
//! Four phases against one server, each timed from the client side (send to last body byte):
//! RegisterTaskDefinition until `--revisions` are stored, then DescribeTaskDefinition,
//! ListTaskDefinitions and DescribeClusters for `--seconds` each.
//!
//! Limitations: client and server share the machine, so the bench's own CPU use (signing,
//! JSON, HTTP) is part of what is measured; `--bench-threads` bounds it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;

use crate::client::{self, Outcome};
use crate::report::{self, Row, Target};
use crate::server::{self, Credentials, Server};
use crate::workloads::{self, DescribeClusters, DescribeTaskDefinition, ListTaskDefinitions, Register};
use berth_client::{EcsClient, Signer};

/// RegisterTaskDefinition must reach this throughput (with 16 clients).
const REGISTER_MIN_OPS: f64 = 2_000.0;
/// Describe* and List* must answer within this at the 99th percentile.
const READ_MAX_P99: Duration = Duration::from_millis(5);
/// Clusters created for the DescribeClusters phase.
const CLUSTERS: usize = 10;

/// Options of `berth-bench api`.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The berth binary to start on a fresh temporary data dir (under $TMPDIR; killed at the end).
    #[arg(long, default_value = "target/release/berth", conflicts_with = "credentials")]
    pub berth: PathBuf,
    /// Use the running server at this endpoint instead (default: the credentials file's).
    #[arg(long, requires = "credentials")]
    pub endpoint: Option<String>,
    /// The `admin-credentials.json` of a running server.
    #[arg(long)]
    pub credentials: Option<PathBuf>,
    /// Concurrent clients, each with its own keep-alive connection.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Task definition revisions to register (and so to have stored for the read phases).
    #[arg(long, default_value_t = 10_000)]
    pub revisions: usize,
    /// Task definition families the revisions are spread over.
    #[arg(long, default_value_t = 100)]
    pub families: usize,
    /// Duration of each read phase, in seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Worker threads of the bench's own runtime (the rest of the machine is the server's).
    #[arg(long, default_value_t = 1)]
    pub bench_threads: usize,
}

/// The server under test: one we started, or one already running.
enum Subject {
    Started(Server),
    External { endpoint: String, credentials: Credentials },
}

/// Runs the benchmark and prints its report; `Ok(false)` when any call failed.
pub async fn run(args: ApiArgs) -> Result<bool> {
    if args.clients == 0 || args.revisions == 0 || args.families == 0 {
        bail!("--clients, --revisions and --families must be at least 1");
    }
    let subject = match &args.credentials {
        Some(path) => {
            let credentials = Credentials::read(path)?;
            let endpoint = args.endpoint.clone().unwrap_or_else(|| credentials.endpoint.clone());
            Subject::External { endpoint, credentials }
        }
        None => {
            eprintln!("berth-bench: starting {}", args.berth.display());
            Subject::Started(Server::start(&args.berth)?)
        }
    };
    let (endpoint, credentials) = match &subject {
        Subject::Started(s) => (s.endpoint.clone(), s.credentials.clone()),
        Subject::External { endpoint, credentials } => (endpoint.clone(), credentials.clone()),
    };
    print_header(&args, &subject, &endpoint);

    let signer = Signer::new(&credentials.access_key_id, &credentials.secret_access_key, &credentials.region);
    let client = Arc::new(EcsClient::new(&endpoint, signer, args.clients)?);
    client.call_json("ListClusters", &json!({})).await.context("a first signed call to the server")?;

    let rows = phases(&args, &client, &credentials).await?;
    println!("{}", report::verdict(&rows));
    let failed = rows.iter().any(|r| r.errors > 0);
    if failed {
        if let Subject::Started(server) = &subject {
            eprintln!("{}", server.log_tail());
        }
    }
    Ok(!failed)
}

/// The four phases, each printing its row as it ends.
async fn phases(args: &ApiArgs, client: &Arc<EcsClient>, credentials: &Credentials) -> Result<Vec<Row>> {
    let tag = run_tag();
    let families: Vec<_> = (0..args.families).map(|i| format!("bench-{tag}-{i:03}")).collect();
    let account = if credentials.account_id.is_empty() { "123456789012" } else { &credentials.account_id };
    let mut rows = Vec::new();

    println!("{}", report::table_head());
    let register = Arc::new(Register::new(families.clone(), args.revisions, account, &credentials.region));
    let outcome = client::run(client, args.clients, None, Arc::clone(&register)).await?;
    rows.push(row("register-task-definition", args, outcome, Target::MinOpsPerSec(REGISTER_MIN_OPS)));

    let references = register.registered();
    let describe = Arc::new(DescribeTaskDefinition { references });
    let outcome = timed(args, client, describe).await?;
    rows.push(row("describe-task-definition", args, outcome, Target::MaxP99(READ_MAX_P99)));

    let list = Arc::new(ListTaskDefinitions { families });
    let outcome = timed(args, client, list).await?;
    rows.push(row("list-task-definitions", args, outcome, Target::MaxP99(READ_MAX_P99)));

    let names: Vec<_> = (0..CLUSTERS).map(|i| format!("bench-{tag}-cluster-{i}")).collect();
    for name in &names {
        client.call_json("CreateCluster", &workloads::create_cluster(name)).await?;
    }
    let outcome = timed(args, client, Arc::new(DescribeClusters { names })).await?;
    rows.push(row("describe-clusters", args, outcome, Target::MaxP99(READ_MAX_P99)));
    Ok(rows)
}

/// Runs a read workload for `--seconds`.
async fn timed<W: client::Workload>(args: &ApiArgs, client: &Arc<EcsClient>, w: Arc<W>) -> Result<Outcome> {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    client::run(client, args.clients, Some(deadline), w).await
}

/// Builds a phase's row, prints it, and reports its first failure on stderr.
fn row(op: &'static str, args: &ApiArgs, outcome: Outcome, target: Target) -> Row {
    if let Some(e) = &outcome.first_error {
        eprintln!("berth-bench: {op}: {} errors; first: {e}", outcome.errors);
    }
    let row = Row::new(op, args.clients, outcome, target);
    println!("{}", row.line());
    row
}

/// The lines above the table: when, on what, against which server, with which load.
fn print_header(args: &ApiArgs, subject: &Subject, endpoint: &str) {
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    println!("berth-bench api, {now}");
    println!("machine:  {}", report::machine());
    match subject {
        Subject::Started(s) => {
            let version = server::version(&s.binary).unwrap_or_else(|e| format!("unknown version ({e:#})"));
            let fs = report::filesystem_of(&std::env::temp_dir()).unwrap_or_else(|| "unknown fs".into());
            println!("server:   {version} ({}), fresh data dir on {fs}, {endpoint}", s.binary.display());
        }
        Subject::External { .. } => {
            println!("server:   running server at {endpoint} (version not known)")
        }
    }
    println!(
        "load:     {} clients; {} revisions over {} families; {} s per read phase; {CLUSTERS} clusters",
        args.clients, args.revisions, args.families, args.seconds
    );
}

/// A short tag unique to this run, so that runs against one server do not collide.
fn run_tag() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    format!("{:08x}", secs as u32)
}
