//! `/v4/<container>/stats` and `/v4/<container>/task/stats`: Docker's stats JSON (the
//! `docker stats --no-stream` shape the ECS agent returns), read from the container's
//! cgroup (v1 or v2).
//!
//! # Limitations
//! - `precpu_stats` is the sample of the previous request for the container (zero at first);
//!   `networks` is not reported.

use std::collections::BTreeMap;
use std::path::Path;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use berth_runtime::cgroups::Hierarchy;
use serde::Serialize;

use super::metadata::lookup;
use super::{json, AppState, Container, Peer};

/// Docker's container stats.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub read: String,
    pub preread: String,
    pub name: String,
    pub id: String,
    pub num_procs: u32,
    pub pids_stats: PidsStats,
    pub cpu_stats: CpuStats,
    pub precpu_stats: CpuStats,
    pub memory_stats: MemoryStats,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PidsStats {
    pub current: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuStats {
    pub cpu_usage: CpuUsage,
    pub system_cpu_usage: u64,
    pub online_cpus: u32,
    pub throttling_data: Throttling,
}

/// Nanoseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuUsage {
    pub total_usage: u64,
    pub percpu_usage: Vec<u64>,
    pub usage_in_kernelmode: u64,
    pub usage_in_usermode: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Throttling {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
}

/// Bytes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryStats {
    pub usage: u64,
    pub max_usage: u64,
    pub limit: u64,
    pub stats: BTreeMap<String, u64>,
}

/// Nanoseconds per USER_HZ tick (100 on Linux).
const NS_PER_TICK: u64 = 10_000_000;

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn number(path: &Path) -> u64 {
    read(path).and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// `key value` lines (memory.stat, cpu.stat, cpuacct.stat).
fn table(path: &Path) -> BTreeMap<String, u64> {
    let text = read(path).unwrap_or_default();
    text.lines().filter_map(|l| l.split_once(' ')).filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?))).collect()
}

/// Host CPU time in nanoseconds since boot, from `/proc/stat` (Docker's `system_cpu_usage`).
fn system_cpu_usage() -> u64 {
    let text = read(Path::new("/proc/stat")).unwrap_or_default();
    let cpu = text.lines().find(|l| l.starts_with("cpu ")).unwrap_or_default();
    cpu.split_whitespace().skip(1).take(7).filter_map(|v| v.parse::<u64>().ok()).sum::<u64>() * NS_PER_TICK
}

fn cpu(cgroups: &Hierarchy, path: &str) -> CpuStats {
    let online_cpus = std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1));
    let system_cpu_usage = system_cpu_usage();
    let usage = match cgroups {
        Hierarchy::V1 { .. } => {
            let dir = cgroups.dir("cpuacct", path).unwrap_or_default();
            let ticks = table(&dir.join("cpuacct.stat"));
            let percpu = read(&dir.join("cpuacct.usage_percpu")).unwrap_or_default();
            CpuUsage {
                total_usage: number(&dir.join("cpuacct.usage")),
                percpu_usage: percpu.split_whitespace().filter_map(|v| v.parse().ok()).collect(),
                usage_in_kernelmode: ticks.get("system").copied().unwrap_or(0) * NS_PER_TICK,
                usage_in_usermode: ticks.get("user").copied().unwrap_or(0) * NS_PER_TICK,
            }
        }
        Hierarchy::V2 { .. } => {
            let stat = table(&cgroups.dir("cpu", path).unwrap_or_default().join("cpu.stat"));
            let us = |k: &str| stat.get(k).copied().unwrap_or(0) * 1000;
            CpuUsage {
                total_usage: us("usage_usec"),
                percpu_usage: Vec::new(),
                usage_in_kernelmode: us("system_usec"),
                usage_in_usermode: us("user_usec"),
            }
        }
    };
    let throttle = table(&cgroups.dir("cpu", path).unwrap_or_default().join("cpu.stat"));
    let get = |k: &str| throttle.get(k).copied().unwrap_or(0);
    CpuStats {
        cpu_usage: usage,
        system_cpu_usage,
        online_cpus,
        throttling_data: Throttling {
            periods: get("nr_periods"),
            throttled_periods: get("nr_throttled"),
            throttled_time: get("throttled_time").max(get("throttled_usec") * 1000),
        },
    }
}

fn memory(cgroups: &Hierarchy, path: &str) -> MemoryStats {
    let dir = cgroups.dir("memory", path).unwrap_or_default();
    match cgroups {
        Hierarchy::V1 { .. } => MemoryStats {
            usage: number(&dir.join("memory.usage_in_bytes")),
            max_usage: number(&dir.join("memory.max_usage_in_bytes")),
            limit: number(&dir.join("memory.limit_in_bytes")),
            stats: table(&dir.join("memory.stat")),
        },
        Hierarchy::V2 { .. } => MemoryStats {
            usage: number(&dir.join("memory.current")),
            max_usage: number(&dir.join("memory.peak")),
            limit: read(&dir.join("memory.max")).and_then(|s| s.trim().parse().ok()).unwrap_or(u64::MAX),
            stats: table(&dir.join("memory.stat")),
        },
    }
}

/// The stats of the cgroup `path` (a container's: `berth/<task>/<container id>`).
fn sample(cgroups: &Hierarchy, name: &str, id: &str, path: &str) -> Stats {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let pids = number(&cgroups.dir("pids", path).unwrap_or_default().join("pids.current"));
    Stats {
        read: now.clone(),
        preread: now,
        name: format!("/{name}"),
        id: id.to_string(),
        num_procs: 0,
        pids_stats: PidsStats { current: pids },
        cpu_stats: cpu(cgroups, path),
        precpu_stats: CpuStats::default(),
        memory_stats: memory(cgroups, path),
    }
}

/// The container's stats, with the previous request's sample as `precpu_stats`.
fn container_stats(app: &super::App, task: &str, name: &str, id: &str) -> Stats {
    let path = format!("{}/{task}/{id}", berth_runtime::cgroups::BERTH_CGROUP);
    let mut stats = sample(&app.cgroups, name, id, &path);
    let mut previous = app.registry.previous.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((at, cpu)) = previous.insert(id.to_string(), (stats.read.clone(), stats.cpu_stats.clone())) {
        stats.preread = at;
        stats.precpu_stats = cpu;
    }
    stats
}

fn task_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or_default()
}

pub(super) async fn container(State(app): AppState, from: Peer, id: Container) -> Response {
    let Some(view) = lookup(&app, from, &id.0) else { return super::metadata::not_found(&id.0) };
    let name = view.metadata.containers.iter().find(|c| c.docker_id == id.0).map(|c| c.name.clone());
    json(StatusCode::OK, &container_stats(&app, task_id(&view.metadata.task_arn), &name.unwrap_or_default(), &id.0))
}

/// Every container's stats, by Docker id.
pub(super) async fn task(State(app): AppState, from: Peer, id: Container) -> Response {
    let Some(view) = lookup(&app, from, &id.0) else { return super::metadata::not_found(&id.0) };
    let task = task_id(&view.metadata.task_arn);
    let all: BTreeMap<String, Stats> = view
        .metadata
        .containers
        .iter()
        .map(|c| (c.docker_id.clone(), container_stats(&app, task, &c.name, &c.docker_id)))
        .collect();
    json(StatusCode::OK, &all)
}
