//! What every handler shares: the store, the account, and the caller of the request.

use std::sync::Arc;

use berth_api::{Arn, ResourceKind};
use berth_store::Store;

use crate::credentials::KeyRing;
use crate::iam::Iam;
use crate::liveness::Heartbeats;
use crate::placement::Placements;
use crate::task_definitions::Families;

/// Server-wide state, shared by every request.
pub struct State {
    /// The store of record.
    pub store: Arc<dyn Store>,
    /// The account every ARN carries; stable for a data directory.
    pub account: String,
    /// Access keys the server accepts.
    pub keys: KeyRing,
    /// Per-family revision allocation for task definitions.
    pub families: Families,
    /// Where clients (and agents) reach this server.
    pub endpoint: String,
    /// Per-cluster placement indexes.
    pub placements: Placements,
    /// Bumped whenever a task is created or changed, to wake agents' long polls.
    pub assignments: tokio::sync::watch::Sender<u64>,
    /// Distinguishes this server process in agents' poll generations.
    pub boot: String,
    /// When each instance's agent last polled.
    pub heartbeats: Heartbeats,
    /// Wakes the service controller: a service changed.
    pub service_changes: tokio::sync::Notify,
    /// IAM: the policy cache and the IAM/STS operations.
    pub iam: Iam,
}

/// Who made this request, and where: ARNs take the region from the signature.
#[derive(Debug, Clone)]
pub struct Call {
    /// The region from the request's credential scope.
    pub region: String,
    /// The caller's principal ARN (e.g. `arn:aws:iam::123456789012:root`).
    pub principal: String,
}

impl State {
    /// Server state over `store`, with no cached indexes yet.
    pub fn new(store: Arc<dyn Store>, account: String, keys: KeyRing, endpoint: String) -> Self {
        Self {
            store,
            keys,
            families: Families::default(),
            endpoint,
            placements: Placements::default(),
            assignments: tokio::sync::watch::Sender::new(0),
            boot: uuid::Uuid::new_v4().simple().to_string(),
            heartbeats: Heartbeats::default(),
            service_changes: tokio::sync::Notify::new(),
            iam: Iam::new(&account),
            account,
        }
    }

    /// Wakes every agent's long poll: some task changed.
    pub fn notify_assignments(&self) {
        self.assignments.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// The assignment generation an agent passes back, as `rx` sees it.
    pub fn generation(&self, rx: &tokio::sync::watch::Receiver<u64>) -> String {
        format!("{}:{}", self.boot, *rx.borrow())
    }

    /// An ECS ARN in this account and the caller's region.
    pub fn arn(&self, call: &Call, kind: ResourceKind, id: impl Into<String>) -> Arn {
        Arn::new(&call.region, &self.account, kind, id)
    }
}

/// Now, in epoch seconds with millisecond precision, as ECS timestamps are.
pub fn now() -> f64 {
    let now = chrono::Utc::now();
    now.timestamp() as f64 + f64::from(now.timestamp_subsec_millis()) / 1000.0
}
