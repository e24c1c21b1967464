//! `berth logs TASK`: a task's output, from the server's log streams (awslogs) or, for a
//! container without a log configuration, from the agent's log file on this host.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_agent::awslogs::{host_log, Destination, HostLog};
use berth_api::logs_model::{ops as logs_ops, GetLogEventsRequest};
use berth_api::model::{ops, ContainerDefinition, DescribeTaskDefinitionRequest, DescribeTasksRequest};
use berth_client::{EcsClient, Signer};
use clap::Args;

/// How often `--follow` looks for new lines.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Options of `berth logs`.
#[derive(Args)]
pub struct LogsArgs {
    /// The task's ARN or id.
    task: String,
    /// The task's cluster.
    #[arg(long, default_value = "default")]
    cluster: String,
    /// Only this container's output.
    #[arg(long)]
    container: Option<String>,
    /// Keep printing new lines until the task stops.
    #[arg(long, short)]
    follow: bool,
    /// The server's `admin-credentials.json` (it names the endpoint too); default: `berth dev`'s.
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// The agent data dir holding output of containers without a log configuration;
    /// default: `berth dev`'s local agent.
    #[arg(long, env = "BERTH_AGENT_DATA_DIR")]
    agent_data_dir: Option<PathBuf>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdminFile {
    access_key_id: String,
    secret_access_key: String,
    region: String,
    endpoint: String,
}

/// Where one container's lines are read from.
enum Source {
    Stream { dest: Destination, token: Option<String> },
    Host(HostLog),
}

pub async fn run(args: LogsArgs) -> Result<()> {
    let dev_dir = dirs::data_dir().map(|d| d.join("berth"));
    let creds_path = args
        .credentials
        .clone()
        .or_else(|| dev_dir.as_ref().map(|d| d.join("admin-credentials.json")))
        .context("no credentials file: pass --credentials")?;
    let bytes = std::fs::read(&creds_path).with_context(|| format!("reading {}", creds_path.display()))?;
    let admin: AdminFile =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", creds_path.display()))?;
    let signer = Signer::new(&admin.access_key_id, &admin.secret_access_key, &admin.region);
    let client = EcsClient::new(&admin.endpoint, signer, 1)?;
    let agent_dir = args.agent_data_dir.clone().or_else(|| creds_path.parent().map(|p| p.join("agent")));
    let (task_id, containers) = describe(&client, &args).await?;
    let mut sources: Vec<(String, Source)> = containers
        .iter()
        .map(|c| {
            let name = c.name.clone().unwrap_or_default();
            let source = match Destination::of(c, &task_id) {
                Some(dest) => Source::Stream { dest, token: None },
                None => {
                    Source::Host(HostLog::new(host_log(agent_dir.as_deref().unwrap_or(".".as_ref()), &task_id, &name)))
                }
            };
            (name, source)
        })
        .collect();
    let label = sources.len() > 1;
    loop {
        let stopped = args.follow && task_stopped(&client, &args).await?;
        for (name, source) in &mut sources {
            for line in read(&client, source).await? {
                if label {
                    println!("{name} | {line}");
                } else {
                    println!("{line}");
                }
            }
        }
        if !args.follow || stopped {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// The task's id and the containers to show.
async fn describe(client: &EcsClient, args: &LogsArgs) -> Result<(String, Vec<ContainerDefinition>)> {
    let tasks = describe_tasks(client, args).await?;
    let Some(task) = tasks.into_iter().next() else {
        bail!("task {} not found in cluster {}", args.task, args.cluster)
    };
    let arn = task.task_arn.unwrap_or_default();
    let req = DescribeTaskDefinitionRequest { task_definition: task.task_definition_arn, ..Default::default() };
    let def = client.call::<ops::DescribeTaskDefinition>(&req).await?.task_definition.unwrap_or_default();
    let mut containers = def.container_definitions.unwrap_or_default();
    if let Some(only) = &args.container {
        containers.retain(|c| c.name.as_ref() == Some(only));
        if containers.is_empty() {
            bail!("task {arn} has no container named {only}");
        }
    }
    Ok((arn.rsplit('/').next().unwrap_or_default().to_string(), containers))
}

async fn describe_tasks(client: &EcsClient, args: &LogsArgs) -> Result<Vec<berth_api::model::Task>> {
    let req = DescribeTasksRequest {
        cluster: Some(args.cluster.clone()),
        tasks: Some(vec![args.task.clone()]),
        ..Default::default()
    };
    Ok(client.call::<ops::DescribeTasks>(&req).await?.tasks.unwrap_or_default())
}

async fn task_stopped(client: &EcsClient, args: &LogsArgs) -> Result<bool> {
    let tasks = describe_tasks(client, args).await?;
    Ok(tasks.first().is_none_or(|t| t.last_status.as_deref() == Some("STOPPED")))
}

/// The lines of `source` not printed yet.
async fn read(client: &EcsClient, source: &mut Source) -> Result<Vec<String>> {
    match source {
        Source::Host(log) => Ok(log.read_new()?),
        Source::Stream { dest, token } => {
            let mut lines = Vec::new();
            loop {
                let req = GetLogEventsRequest {
                    log_group_name: Some(dest.group.clone()),
                    log_stream_name: Some(dest.stream.clone()),
                    start_from_head: Some(true),
                    next_token: token.clone(),
                    ..Default::default()
                };
                let page = match client.call::<logs_ops::GetLogEvents>(&req).await {
                    Ok(page) => page,
                    // Nothing shipped yet: the stream appears with the first lines.
                    Err(berth_client::ClientError::Api { error_type, .. })
                        if error_type == "ResourceNotFoundException" =>
                    {
                        return Ok(lines)
                    }
                    Err(e) => return Err(e.into()),
                };
                lines.extend(page.events.unwrap_or_default().into_iter().filter_map(|e| e.message));
                if page.next_forward_token == *token {
                    return Ok(lines);
                }
                *token = page.next_forward_token;
            }
        }
    }
}
