//! `berth-bench placement`: the scheduler alone (`berth_server::scheduler`), with no server, no
//! store and no agent process: a FAKE AGENT, in memory and running no containers, registers the
//! instances and takes the assignments, so what is measured is the placement index and its
//! algorithm.
//!
//! Each variant builds a fresh cluster of `--instances` instances (2048 CPU units / 4096 MiB,
//! three Availability Zones, five instance types) and places `--tasks` tasks one `place()` call
//! at a time (`--batch` copies per call, as RunTask's `count`). Tasks are mixed: 50% 128 CPU /
//! 256 MiB, 30% 64/128, 15% 256/512, 5% 512/1024, 2% of them with static host port 8080, in 100
//! groups. It prints placements per second, total time, and p50/p99/max of one `place()` call,
//! then `bench: PASS` when every variant reaches `--min-rate` placements per second (the issue's
//! target is 20,000), else `bench: MISS`.
//!
//! Limitations: single-threaded, as placement in one cluster is (the server serializes it per
//! cluster); the figures include the fake agent's bookkeeping and one clock read per call.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use berth_server::scheduler::{
    BinpackField, Constraint, Demand, InstanceState, Placement, Resources, SpreadField, Strategy,
};
use clap::{Args, ValueEnum};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::stats::Summary;

const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
const INSTANCE_TYPES: [&str; 5] = ["m5.large", "c5.large", "t3.large", "m6i.large", "r5.large"];
const INSTANCE_CPU: i64 = 2048;
const INSTANCE_MEMORY: i64 = 4096;
/// Ports ECS reserves on every instance (SSH, Docker, the agent).
const RESERVED_PORTS: [u16; 5] = [22, 2375, 2376, 51678, 51679];
/// The memberOf variant's expression: four instance types of five, in any of the three zones.
const MEMBER_OF: &str = "attribute:ecs.instance-type != r5.large and \
                         attribute:ecs.availability-zone in [us-east-1a, us-east-1b, us-east-1c]";
const GROUPS: usize = 100;

/// Options of `berth-bench placement`.
#[derive(Debug, Args)]
pub struct PlacementArgs {
    /// Container instances in the cluster.
    #[arg(long, default_value_t = 10_000)]
    pub instances: usize,
    /// Tasks placed per variant.
    #[arg(long, default_value_t = 100_000)]
    pub tasks: usize,
    /// Which variant to run (all of them by default).
    #[arg(long, value_enum, default_value_t = Variant::All)]
    pub strategy: Variant,
    /// Copies per place() call (RunTask's count, 1 to 10).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Seed of the workload and of placement's random choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Placements per second every variant must reach for PASS.
    #[arg(long, default_value_t = 20_000.0)]
    pub min_rate: f64,
}

/// The placement rules a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Variant {
    /// binpack(memory).
    Binpack,
    /// spread(attribute:ecs.availability-zone), then binpack(memory).
    SpreadBinpack,
    /// memberOf(instance type and zone), then binpack(memory).
    Memberof,
    /// random.
    Random,
    /// A service's default: spread(attribute:ecs.availability-zone), then spread(instanceId).
    ServiceDefault,
    /// Every variant above, in turn.
    All,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::Binpack => "binpack(memory)",
            Variant::SpreadBinpack => "spread(zone)+binpack(memory)",
            Variant::Memberof => "memberOf(type,zone)+binpack(memory)",
            Variant::Random => "random",
            Variant::ServiceDefault => "spread(zone)+spread(instanceId)",
            Variant::All => "all",
        }
    }

    fn rules(self) -> Result<(Vec<Constraint>, Vec<Strategy>)> {
        let zone = || Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".to_string()));
        let binpack = Strategy::Binpack(BinpackField::Memory);
        Ok(match self {
            Variant::Binpack => (vec![], vec![binpack]),
            Variant::SpreadBinpack => (vec![], vec![zone(), binpack]),
            Variant::Memberof => (vec![Constraint::MemberOf(berth_api::query::parse(MEMBER_OF)?)], vec![binpack]),
            Variant::Random => (vec![], vec![Strategy::Random]),
            Variant::ServiceDefault => (vec![], Strategy::service_default()),
            Variant::All => bail!("'all' is not one variant"),
        })
    }
}

/// The fake agent: in memory, no containers. It registers the instances the way a real agent's
/// RegisterContainerInstance would describe them, and records the tasks assigned to each so the
/// run can be checked afterwards (no instance given more than it has, no port given twice).
struct FakeAgent {
    registered: HashMap<String, InstanceState>,
    assigned: HashMap<String, Vec<Demand>>,
}

impl FakeAgent {
    fn new() -> Self {
        Self { registered: HashMap::new(), assigned: HashMap::new() }
    }

    /// "Registers" instance `n` and returns what placement is told of it.
    fn register(&mut self, n: usize) -> InstanceState {
        let resources = Resources {
            cpu: INSTANCE_CPU,
            memory: INSTANCE_MEMORY,
            ports_tcp: RESERVED_PORTS.into(),
            ports_udp: BTreeSet::new(),
        };
        let id = format!("{n:032x}");
        let attributes: BTreeMap<String, String> = [
            ("ecs.availability-zone", ZONES[n % ZONES.len()]),
            ("ecs.instance-type", INSTANCE_TYPES[(n / ZONES.len()) % INSTANCE_TYPES.len()]),
            ("ecs.os-type", "linux"),
            ("ecs.cpu-architecture", "x86_64"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let state = InstanceState {
            arn: format!("arn:aws:ecs:us-east-1:123456789012:container-instance/bench/{id}"),
            id,
            ec2_instance_id: format!("i-{n:017x}"),
            attributes,
            registered: resources.clone(),
            remaining: resources,
            agent_version: Some("1.0.0".to_string()),
            ..Default::default()
        };
        self.registered.insert(state.arn.clone(), state.clone());
        state
    }

    /// Takes a task: records it, starts nothing.
    fn start(&mut self, instance_arn: &str, demand: &Demand) {
        self.assigned.entry(instance_arn.to_string()).or_default().push(demand.clone());
    }

    /// Checks every instance's assignments against what it registered.
    fn verify(&self) -> Result<usize> {
        let mut tasks = 0;
        for (arn, demands) in &self.assigned {
            let Some(instance) = self.registered.get(arn) else { bail!("fake agent: task on unknown instance {arn}") };
            let cpu: i64 = demands.iter().map(|d| d.cpu).sum();
            let memory: i64 = demands.iter().map(|d| d.memory).sum();
            if cpu > instance.registered.cpu || memory > instance.registered.memory {
                bail!("fake agent: {arn} over-committed: {cpu} CPU / {memory} MiB placed");
            }
            let mut ports = instance.registered.ports_tcp.clone();
            for p in demands.iter().flat_map(|d| &d.ports_tcp) {
                if !ports.insert(*p) {
                    bail!("fake agent: port {p} given twice on {arn}");
                }
            }
            tasks += demands.len();
        }
        Ok(tasks)
    }
}

/// The mixed workload, reproducible from the seed.
fn workload(n: usize, seed: u64) -> Vec<Demand> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    (0..n)
        .map(|_| {
            let (cpu, memory) = match rng.random_range(0..100) {
                0..50 => (128, 256),
                50..80 => (64, 128),
                80..95 => (256, 512),
                _ => (512, 1024),
            };
            let web = rng.random_range(0..100) < 2;
            Demand {
                cpu,
                memory,
                ports_tcp: if web { vec![8080] } else { vec![] },
                group: if web {
                    "family:web".to_string()
                } else {
                    format!("family:app-{}", rng.random_range(0..GROUPS))
                },
                ..Default::default()
            }
        })
        .collect()
}

struct Outcome {
    variant: Variant,
    build: Duration,
    placed: usize,
    unplaced: usize,
    total: Duration,
    calls: Summary,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.placed as f64 / self.total.as_secs_f64().max(1e-9)
    }
}

fn run_variant(args: &PlacementArgs, variant: Variant, tasks: &[Demand]) -> Result<Outcome> {
    let (constraints, strategies) = variant.rules()?;
    let mut agent = FakeAgent::new();
    let states: Vec<InstanceState> = (0..args.instances).map(|n| agent.register(n)).collect();
    let started = Instant::now();
    let mut placement = Placement::with_seed(args.seed);
    for s in states {
        placement.upsert(s);
    }
    let build = started.elapsed();
    let mut rng = StdRng::seed_from_u64(args.seed);
    let batch = args.batch.clamp(1, 10);
    let mut samples = Vec::with_capacity(tasks.len() / batch + 1);
    let (mut placed, mut unplaced) = (0, 0);
    let started = Instant::now();
    for chunk in tasks.chunks(batch) {
        // One call places `batch` copies of the chunk's first task, as one RunTask would.
        let demand = &chunk[0];
        let t = Instant::now();
        let result = placement.place(demand, chunk.len(), &constraints, &strategies, &mut rng);
        samples.push(t.elapsed());
        for arn in &result.placed {
            agent.start(arn, demand);
        }
        placed += result.placed.len();
        unplaced += result.unplaced;
    }
    let total = started.elapsed();
    let checked = agent.verify()?;
    if checked != placed {
        bail!("fake agent holds {checked} tasks but {placed} were placed");
    }
    Ok(Outcome { variant, build, placed, unplaced, total, calls: Summary::of(samples) })
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs the benchmark; `Ok(false)` when a variant misses the rate.
pub fn run(args: PlacementArgs) -> Result<bool> {
    if args.instances == 0 || args.tasks == 0 {
        bail!("--instances and --tasks must be at least 1");
    }
    let variants = match args.strategy {
        Variant::All => {
            vec![Variant::Binpack, Variant::SpreadBinpack, Variant::Memberof, Variant::Random, Variant::ServiceDefault]
        }
        v => vec![v],
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let batch = args.batch.clamp(1, 10);
    println!("berth-bench placement: the scheduler alone (berth_server::scheduler); no server, no store");
    println!("fake agent: in-memory, no containers");
    println!("machine: {cpus} cpus, load average {} at start", load_average());
    println!(
        "cluster: {} instances of {INSTANCE_CPU} CPU / {INSTANCE_MEMORY} MiB, {} zones, {} instance types",
        args.instances,
        ZONES.len(),
        INSTANCE_TYPES.len()
    );
    println!(
        "tasks: {} per variant (50% 128/256, 30% 64/128, 15% 256/512, 5% 512/1024 CPU/MiB; 2% with host port 8080), \
         {GROUPS} groups, {batch} per place() call, seed {}",
        args.tasks, args.seed
    );
    println!();
    println!(
        "{:<38} {:>9} {:>9} {:>9} {:>9} {:>13} {:>9} {:>9} {:>9}",
        "variant", "build ms", "placed", "unplaced", "total s", "placements/s", "p50 us", "p99 us", "max us"
    );
    let tasks = workload(args.tasks, args.seed);
    let mut pass = true;
    for v in variants {
        let o = run_variant(&args, v, &tasks)?;
        let ok = o.rate() >= args.min_rate;
        pass &= ok;
        println!(
            "{:<38} {:>9.1} {:>9} {:>9} {:>9.3} {:>13.0} {:>9.1} {:>9.1} {:>9.1}{}",
            o.variant.label(),
            o.build.as_secs_f64() * 1e3,
            o.placed,
            o.unplaced,
            o.total.as_secs_f64(),
            o.rate(),
            micros(o.calls.p50),
            micros(o.calls.p99),
            micros(o.calls.max),
            if ok { "" } else { "  <- below target" }
        );
    }
    println!();
    println!("target: >= {:.0} placements/s in every variant (p50/p99/max are per place() call)", args.min_rate);
    println!("machine: load average {} at end", load_average());
    println!("bench: {}", if pass { "PASS" } else { "MISS" });
    Ok(pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_run_places_everything_and_checks_out() {
        let args =
            PlacementArgs { instances: 30, tasks: 200, strategy: Variant::All, batch: 3, seed: 3, min_rate: 0.0 };
        let tasks = workload(args.tasks, args.seed);
        for v in [Variant::Binpack, Variant::SpreadBinpack, Variant::Memberof, Variant::Random, Variant::ServiceDefault]
        {
            let o = run_variant(&args, v, &tasks).unwrap();
            assert_eq!(o.placed + o.unplaced, 200, "{v:?}");
            assert_eq!(o.unplaced, 0, "{v:?}");
        }
    }

    #[test]
    fn the_workload_is_reproducible() {
        assert_eq!(workload(50, 9), workload(50, 9));
    }
}
