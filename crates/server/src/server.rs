//! Starting the server: open the store, ensure the account and administrator key, write
//! the CLI profile, and serve HTTP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_store::{Expect, SqliteStore, Store, StoreError, Txn};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::auth::{self, CliProfile};
use crate::credentials::{self, KeyRing};
use crate::front;
use crate::operations::Operations;
use crate::records::{self, RecordError};
use crate::state::State;

/// The default listen address: loopback, port 9270.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9270";
const ACCOUNT_KEY: &str = "meta/account";

/// How to run a server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the store and the administrator credentials live.
    pub data_dir: PathBuf,
    /// The HTTP listen address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The account id for a new data dir; an existing one keeps the account it has.
    pub account_id: String,
    /// The region written into the CLI profile.
    pub region: String,
    /// Whether to write the `berth` AWS CLI profile.
    pub write_profile: bool,
    /// The service controller's clocks (instance liveness, health, restart back-off).
    pub services: crate::services::Timing,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory could not be prepared.
    #[error("preparing data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    /// The store failed to open.
    #[error("opening the store in {path}: {source}")]
    Store { path: PathBuf, source: StoreError },
    /// Reading or writing server records failed.
    #[error("initialising server records: {0}")]
    Records(#[from] RecordError),
    /// The listen address could not be bound.
    #[error("listening on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    /// The credentials file or the CLI profile could not be written.
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    /// The Fargate capacity pool's record could not be created.
    #[error("creating the Fargate capacity pool: {0}")]
    Pool(String),
    /// Serving HTTP failed.
    #[error("serving HTTP: {0}")]
    Serve(std::io::Error),
}

/// The administrator credentials, written to `admin-credentials.json` in the data dir.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AdminCredentials<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    region: &'a str,
    endpoint: &'a str,
    account_id: &'a str,
}

/// A server that is listening.
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// `http://ADDR`, as clients should use it.
    pub endpoint: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    controller: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Opens the store, prepares credentials and starts serving.
    pub async fn start(config: Config) -> Result<Self, ServerError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|source| ServerError::DataDir { path: config.data_dir.clone(), source })?;
        let db = config.data_dir.join("berth.db");
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&db).map_err(|source| ServerError::Store { path: db, source })?);
        let account = ensure_account(&*store, &config.account_id).await?;
        let keys = KeyRing::default();
        keys.load(&*store).await?;
        let admin = credentials::ensure_admin(&*store, &keys, &account).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Listen { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Listen { addr: config.listen, source })?;
        let endpoint = endpoint_for(addr);
        write_admin_credentials(&config, &admin, &endpoint, &account)?;
        if config.write_profile {
            write_profile(&config, &admin, &endpoint)?;
        }
        let state = Arc::new(State::new(store, account, keys, endpoint.clone()));
        crate::fargate::ensure_pool(&state, &config.region).await.map_err(|e| ServerError::Pool(e.message))?;
        let controller = crate::services::controller::spawn(Arc::clone(&state), config.services.clone());
        let sweep = tokio::spawn(crate::logs::retention::run(Arc::clone(&state)));
        let app = front::router(state, Operations::ecs());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
            sweep.abort();
            served
        });
        Ok(Self { addr, endpoint, stop, task, controller })
    }

    /// Stops accepting requests, finishes those in flight, and closes the store.
    pub async fn stop(self) -> Result<(), ServerError> {
        let _ = self.stop.send(());
        self.controller.abort();
        Self::join(self.task).await
    }

    /// Serves until serving fails.
    pub async fn wait(&mut self) -> Result<(), ServerError> {
        Self::join(&mut self.task).await
    }

    async fn join(
        task: impl std::future::Future<Output = Result<std::io::Result<()>, tokio::task::JoinError>>,
    ) -> Result<(), ServerError> {
        match task.await {
            Ok(result) => result.map_err(ServerError::Serve),
            Err(e) => Err(ServerError::Serve(std::io::Error::other(e))),
        }
    }
}

/// The account of this data dir, fixed on first start.
async fn ensure_account(store: &dyn Store, wanted: &str) -> Result<String, ServerError> {
    if let Some((account, _)) = records::get::<String>(store, ACCOUNT_KEY).await? {
        return Ok(account);
    }
    let txn = Txn::new().put(ACCOUNT_KEY, records::encode(wanted)?, Expect::Absent);
    store.commit(txn).await.map_err(RecordError::from)?;
    Ok(wanted.to_string())
}

/// A client-usable URL: a wildcard bind is reached through loopback.
fn endpoint_for(addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() };
    match addr {
        SocketAddr::V6(_) if !addr.ip().is_unspecified() => format!("http://[{host}]:{}", addr.port()),
        _ => format!("http://{host}:{}", addr.port()),
    }
}

fn write_admin_credentials(
    config: &Config,
    admin: &credentials::AccessKey,
    endpoint: &str,
    account: &str,
) -> Result<(), ServerError> {
    let path = config.data_dir.join("admin-credentials.json");
    let body = AdminCredentials {
        access_key_id: &admin.access_key_id,
        secret_access_key: &admin.secret_access_key,
        region: &config.region,
        endpoint,
        account_id: account,
    };
    let json = serde_json::to_vec_pretty(&body).map_err(|e| ServerError::Records(RecordError::Encode(e)))?;
    write_private(&path, &json).map_err(|source| ServerError::Write { path, source })
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn write_profile(config: &Config, admin: &credentials::AccessKey, endpoint: &str) -> Result<(), ServerError> {
    let profile = CliProfile {
        name: "berth",
        access_key_id: &admin.access_key_id,
        secret_access_key: &admin.secret_access_key,
        region: &config.region,
        endpoint_url: endpoint,
        services: &["ecs", "iam", "sts", "cloudwatch_logs", "secrets_manager"],
    };
    auth::write_cli_profile(&profile)
        .map(|_| ())
        .map_err(|source| ServerError::Write { path: PathBuf::from("~/.aws/config"), source })
}
