//! `berth-bench services`: the service controller on simulated capacity.
//!
//! A fresh server (tasks without health checks count as healthy at once) gets `--instances`
//! container instances registered by a fake agent: in memory, no containers, it long-polls
//! each instance's assignments (`PollAssignments`, as the real agent does) and reports every
//! task RUNNING as soon as it is assigned and STOPPED as soon as it is asked to stop. Then a
//! service of `--tasks` tasks is created and, once steady, rolled to a new revision (100% /
//! 200%). Printed: the wall time of each until the service is steady (one deployment,
//! COMPLETED, runningCount = desiredCount), and the server's CPU time over it.
//!
//! Limitations: the fake agent answers at once, so the figures are the controller's, the
//! store's and the API's, not container start times (`scripts/bench-services` adds a 20-task
//! service on real containers for that).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use berth_api::agent::{PollAssignments, PollAssignmentsRequest};
use berth_client::{EcsClient, Signer};
use clap::Args;
use serde_json::{json, Value};

use crate::server::Server;

/// How long a fake agent's long poll waits for a change.
const POLL_WAIT_SECONDS: u32 = 5;
/// The longest a phase may take before the bench gives up.
const PHASE_TIMEOUT: Duration = Duration::from_secs(600);

/// Options of `berth-bench services`.
#[derive(Debug, Args)]
pub struct ServicesArgs {
    /// The berth binary to start on a fresh temporary data dir.
    #[arg(long, default_value = "target/release/berth")]
    pub berth: PathBuf,
    /// Simulated container instances (4 vCPU, 16 GiB each).
    #[arg(long, default_value_t = 50)]
    pub instances: usize,
    /// The service's desired count.
    #[arg(long, default_value_t = 500)]
    pub tasks: usize,
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: ServicesArgs) -> Result<bool> {
    if args.instances == 0 || args.tasks == 0 {
        bail!("--instances and --tasks must be at least 1");
    }
    let server = Server::start_with(&args.berth, &["--task-healthy-after", "0"])?;
    let c = &server.credentials;
    let signer = Signer::new(&c.access_key_id, &c.secret_access_key, &c.region);
    let ecs = Arc::new(EcsClient::new(&server.endpoint, signer, 64)?);
    let cluster = "bench-services";
    ecs.call_json("CreateCluster", &json!({"clusterName": cluster})).await?;
    let definition = json!({"family": "svc", "containerDefinitions": [
        {"name": "app", "image": "bench/fake:1", "memory": 64, "cpu": 64}]});
    ecs.call_json("RegisterTaskDefinition", &definition).await?;
    let mut agents = Vec::new();
    for i in 0..args.instances {
        let arn = register(&ecs, cluster, i).await?;
        agents.push(tokio::spawn(fake_agent(Arc::clone(&ecs), cluster.to_string(), arn)));
    }
    println!(
        "services bench: {} tasks on {} simulated instances (fake agent, no containers)",
        args.tasks, args.instances
    );
    let cpu = || server.cpu_seconds();
    let before = cpu()?;
    let began = Instant::now();
    let create = json!({"cluster": cluster, "serviceName": "web", "taskDefinition": "svc", "desiredCount": args.tasks});
    ecs.call_json("CreateService", &create).await?;
    steady(&ecs, cluster, None).await?;
    let (create_wall, create_cpu) = (began.elapsed(), cpu()? - before);
    ecs.call_json("RegisterTaskDefinition", &definition).await?;
    let before = cpu()?;
    let began = Instant::now();
    let update = json!({"cluster": cluster, "service": "web", "taskDefinition": "svc"});
    let updated = ecs.call_json("UpdateService", &update).await?;
    let primary = updated["service"]["deployments"][0]["id"].as_str().unwrap_or_default().to_string();
    steady(&ecs, cluster, Some(&primary)).await?;
    let (roll_wall, roll_cpu) = (began.elapsed(), cpu()? - before);
    agents.iter().for_each(|a| a.abort());
    println!(
        "create to steady state:          {:>8.2} s wall, {:>6.2} s server CPU",
        create_wall.as_secs_f64(),
        create_cpu
    );
    println!(
        "rolling deployment to rev 2:     {:>8.2} s wall, {:>6.2} s server CPU",
        roll_wall.as_secs_f64(),
        roll_cpu
    );
    Ok(true)
}

/// Registers simulated instance `i` the way an agent does.
async fn register(ecs: &EcsClient, cluster: &str, i: usize) -> Result<String> {
    let resource = |name: &str, v: i64| json!({"name": name, "type": "INTEGER", "integerValue": v});
    let body = json!({
        "cluster": cluster,
        "totalResources": [resource("CPU", 4096), resource("MEMORY", 16384)],
        "attributes": [{"name": "ecs.os-type", "value": "linux"},
                       {"name": "ecs.availability-zone", "value": format!("zone-{}", i % 3)}],
        "versionInfo": {"agentVersion": "fake"},
    });
    let out = ecs.call_json("RegisterContainerInstance", &body).await?;
    out["containerInstance"]["containerInstanceArn"].as_str().map(str::to_string).context("no instance ARN")
}

/// The fake agent of one instance: every assigned task RUNNING at once, every task asked to
/// stop STOPPED at once.
async fn fake_agent(ecs: Arc<EcsClient>, cluster: String, instance: String) -> Result<()> {
    let mut generation = None;
    loop {
        let req = PollAssignmentsRequest {
            cluster: Some(cluster.clone()),
            container_instance: Some(instance.clone()),
            generation: generation.take(),
            wait_seconds: Some(POLL_WAIT_SECONDS),
        };
        let answer = ecs.call::<PollAssignments>(&req).await?;
        generation = Some(answer.generation);
        for a in answer.assignments {
            let t = a.task;
            let status = match (t.desired_status.as_deref(), t.last_status.as_deref()) {
                (Some("STOPPED"), _) => "STOPPED",
                (_, Some("RUNNING")) => continue,
                _ => "RUNNING",
            };
            let body = json!({"cluster": cluster, "task": t.task_arn, "status": status});
            ecs.call_json("SubmitTaskStateChange", &body).await?;
        }
    }
}

/// Waits until the service is steady (on deployment `primary`, when given).
async fn steady(ecs: &EcsClient, cluster: &str, primary: Option<&str>) -> Result<Value> {
    let began = Instant::now();
    while began.elapsed() < PHASE_TIMEOUT {
        let out = ecs.call_json("DescribeServices", &json!({"cluster": cluster, "services": ["web"]})).await?;
        let s = &out["services"][0];
        let deployments = s["deployments"].as_array().cloned().unwrap_or_default();
        let done = deployments.len() == 1
            && deployments[0]["rolloutState"] == "COMPLETED"
            && primary.is_none_or(|p| deployments[0]["id"] == p)
            && s["runningCount"] == s["desiredCount"];
        if done {
            return Ok(s.clone());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the service did not reach a steady state within {PHASE_TIMEOUT:?}")
}
