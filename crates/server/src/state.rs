//! What every handler shares: the store, the account, and the caller of the request.

use std::sync::Arc;

use berth_api::{Arn, ResourceKind};
use berth_store::Store;

use crate::credentials::KeyRing;
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
    /// An ECS ARN in this account and the caller's region.
    pub fn arn(&self, call: &Call, kind: ResourceKind, id: impl Into<String>) -> Arn {
        Arn::new(&call.region, &self.account, kind, id)
    }
}
