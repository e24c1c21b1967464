//! The endpoints the agent serves to its tasks' containers at `169.254.170.2`: task-role
//! credentials (`/v2/credentials/<id>`), the task metadata endpoint v4 (`/v4/<container>`),
//! and a relay of every other request to the berth server, so that an SDK in a container
//! reaches berth at `http://169.254.170.2` with no configuration.
//!
//! # Behavior
//! - The agent listens on `0.0.0.0:<port>` (the port is kept in `endpoint-port` so that
//!   containers adopted after a restart keep their URIs) and a `nat PREROUTING` rule
//!   redirects `169.254.170.2:80` arriving on the agent's bridge to it, as the ECS agent
//!   does for bridge and awsvpc tasks. Host-mode containers share the host's network, so
//!   their URIs name `127.0.0.1:<port>` (`AWS_CONTAINER_CREDENTIALS_FULL_URI`).
//! - A task's credentials and metadata are served only to requests that come from the
//!   task's own address (bridge and awsvpc); host-mode tasks are told apart by their
//!   unguessable credentials id alone, as in ECS.
//!
//! # Limitations
//! - One agent per bridge: the redirect is keyed by the bridge name.

mod credentials;
mod metadata;
mod relay;
mod stats;

pub use credentials::Credentials;
pub use metadata::{ContainerMetadata, Limits, Network, TaskMetadata};

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, RwLock};

use axum::extract::{ConnectInfo, Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use berth_runtime::cgroups::Hierarchy;

/// The link-local address the endpoints are served at, as in ECS.
pub const ENDPOINT_IP: &str = "169.254.170.2";

/// What the endpoints know of one task.
#[derive(Debug, Clone, Default)]
pub struct TaskView {
    /// The task's own address; requests for it must come from there (none in host mode).
    pub address: Option<IpAddr>,
    /// The unguessable id in `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`.
    pub credentials_id: Option<String>,
    /// The role session currently served.
    pub credentials: Option<Credentials>,
    /// What `/v4/.../task` answers.
    pub metadata: TaskMetadata,
    /// The task's tags (`/taskWithTags`).
    pub tags: Vec<berth_api::model::Tag>,
    /// Where a Fargate task's ephemeral storage is mounted, measured at each `/task` request.
    pub storage: Option<std::path::PathBuf>,
}

/// The tasks the endpoints serve, by task id.
#[derive(Debug, Default)]
pub struct Registry {
    tasks: RwLock<HashMap<String, TaskView>>,
    /// Each container's last CPU sample (time, stats), for the next `precpu_stats`.
    previous: std::sync::Mutex<HashMap<String, (String, stats::CpuStats)>>,
}

impl Registry {
    /// Changes (or adds) task `id`'s view.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut TaskView)) {
        let mut tasks = self.tasks.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(tasks.entry(id.to_string()).or_default());
    }

    /// Forgets task `id`: its credentials are served no more.
    pub fn remove(&self, id: &str) {
        self.tasks.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id);
        let mut previous = self.previous.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        previous.retain(|container, _| !container.starts_with(id));
    }

    /// The view of the task `pick` selects, if the request from `peer` may see it.
    fn find(&self, peer: IpAddr, pick: impl Fn(&TaskView) -> bool) -> Option<TaskView> {
        let tasks = self.tasks.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let view = tasks.values().find(|v| pick(v))?;
        view.address.is_none_or(|a| a == peer).then(|| view.clone())
    }
}

/// What the handlers share.
#[derive(Clone)]
struct App {
    registry: Arc<Registry>,
    relay: Arc<relay::Relay>,
    cgroups: Arc<Hierarchy>,
}

/// Why the endpoints could not be served.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The listener could not be bound.
    #[error("binding the task endpoints: {0}")]
    Bind(std::io::Error),
    /// The redirect of 169.254.170.2 could not be installed.
    #[error("redirecting {ENDPOINT_IP}: {0}")]
    Redirect(String),
    /// The server URL is unusable for the relay.
    #[error("relay to {0}: not an http URL")]
    Server(String),
}

/// Starts serving the endpoints; answers the port they listen on.
pub async fn serve(
    registry: Arc<Registry>,
    cgroups: Arc<Hierarchy>,
    server: &str,
    bridge: &str,
    data_dir: &Path,
) -> Result<u16, EndpointError> {
    let listener = bind(data_dir).await?;
    let port = listener.local_addr().map_err(EndpointError::Bind)?.port();
    let relay = Arc::new(relay::Relay::new(server).ok_or_else(|| EndpointError::Server(server.to_string()))?);
    let app = Router::new()
        .route("/v2/credentials/{id}", get(credentials::handle))
        .route("/v4/{container}", get(metadata::container))
        .route("/v4/{container}/task", get(metadata::task))
        .route("/v4/{container}/taskWithTags", get(metadata::task_with_tags))
        .route("/v4/{container}/stats", get(stats::container))
        .route("/v4/{container}/task/stats", get(stats::task))
        .fallback(relay::handle)
        .with_state(App { registry, relay, cgroups });
    tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service).await {
            tracing::error!(error = %e, "the task endpoints stopped");
        }
    });
    redirect(bridge, port).await?;
    Ok(port)
}

/// Binds the port this agent used before, else a new one (saved for the next start).
async fn bind(data_dir: &Path) -> Result<tokio::net::TcpListener, EndpointError> {
    let saved = data_dir.join("endpoint-port");
    let previous = std::fs::read_to_string(&saved).ok().and_then(|p| p.trim().parse::<u16>().ok());
    let any = |port| SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let listener = match previous {
        Some(port) => match tokio::net::TcpListener::bind(any(port)).await {
            Ok(l) => l,
            Err(_) => tokio::net::TcpListener::bind(any(0)).await.map_err(EndpointError::Bind)?,
        },
        None => tokio::net::TcpListener::bind(any(0)).await.map_err(EndpointError::Bind)?,
    };
    let port = listener.local_addr().map_err(EndpointError::Bind)?.port();
    std::fs::write(&saved, port.to_string()).map_err(EndpointError::Bind)?;
    Ok(listener)
}

/// Replaces this bridge's redirect of `169.254.170.2:80` with one to `port`.
async fn redirect(bridge: &str, port: u16) -> Result<(), EndpointError> {
    let listed = iptables(&["-t", "nat", "-S", "PREROUTING"]).await?;
    for line in listed.lines() {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let has = |flag: &str, value: &str| tokens.windows(2).any(|w| w == [flag, value]);
        if has("-A", "PREROUTING") && has("-i", bridge) && has("-d", "169.254.170.2/32") && has("-j", "REDIRECT") {
            let mut args = vec!["-t", "nat", "-D", "PREROUTING"];
            args.extend(&tokens[2..]);
            iptables(&args).await?;
        }
    }
    let port = port.to_string();
    let rule = ["-i", bridge, "-d", "169.254.170.2/32", "-p", "tcp", "-m", "tcp", "--dport", "80"];
    let mut args = vec!["-t", "nat", "-I", "PREROUTING"];
    args.extend(rule);
    args.extend(["-j", "REDIRECT", "--to-ports", &port]);
    iptables(&args).await.map(drop)
}

async fn iptables(args: &[&str]) -> Result<String, EndpointError> {
    let out = tokio::process::Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .await
        .map_err(|e| EndpointError::Redirect(e.to_string()))?;
    if !out.status.success() {
        return Err(EndpointError::Redirect(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A JSON answer.
fn json(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let body = serde_json::to_string(body).unwrap_or_else(|_| "{}".into());
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The ECS agent's error shape: `{"code": ..., "message": ...}`.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json(status, &serde_json::json!({ "code": code, "message": message }))
}

/// The peer's address, with IPv4-mapped IPv6 addresses as IPv4.
fn peer(ConnectInfo(addr): ConnectInfo<SocketAddr>) -> IpAddr {
    match addr.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

type Peer = ConnectInfo<SocketAddr>;
type Container = UrlPath<String>;
type AppState = State<App>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_is_shown_only_to_its_own_address() {
        let registry = Registry::default();
        let own: IpAddr = "10.219.40.5".parse().expect("ip");
        registry.update("t1", |v| {
            v.address = Some(own);
            v.credentials_id = Some("id-1".into());
        });
        registry.update("host", |v| v.credentials_id = Some("id-2".into()));
        let pick = |id: &'static str| move |v: &TaskView| v.credentials_id.as_deref() == Some(id);
        assert!(registry.find(own, pick("id-1")).is_some());
        assert!(registry.find("10.219.40.6".parse().expect("ip"), pick("id-1")).is_none(), "another task");
        assert!(registry.find(Ipv4Addr::LOCALHOST.into(), pick("id-1")).is_none(), "the host");
        assert!(registry.find(Ipv4Addr::LOCALHOST.into(), pick("id-2")).is_some(), "host mode: the id alone");
        registry.remove("t1");
        assert!(registry.find(own, pick("id-1")).is_none(), "forgotten with its task");
    }
}
