//! Task scale-in protection: GetTaskProtection and UpdateTaskProtection.
//!
//! Protection is stored beside the task at `protection/CLUSTER/ID` (so agents' reports and
//! protection changes never contend for the task record). Only tasks of a service can be
//! protected; an expired protection reads as disabled. The service controller does not
//! choose protected tasks when it scales in or replaces tasks in a deployment.

use std::collections::HashSet;
use std::sync::Arc;

use berth_api::model::{
    Failure, GetTaskProtectionRequest, GetTaskProtectionResponse, ProtectedTask, UpdateTaskProtectionRequest,
    UpdateTaskProtectionResponse,
};
use berth_api::ApiError;
use berth_store::{Expect, Txn};
use serde::{Deserialize, Serialize};

use super::{id_of, key, Stored};
use crate::clusters;
use crate::records::{self, RecordError};
use crate::state::{now, Call, State};

/// ECS's default protection period, in minutes.
const DEFAULT_MINUTES: i32 = 120;
/// The longest protection ECS allows (48 hours), in minutes.
const MAX_MINUTES: i32 = 2880;

/// A task's protection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Protection {
    /// Epoch seconds when it lapses.
    expires_at: f64,
}

fn protection_key(cluster: &str, id: &str) -> String {
    format!("protection/{cluster}/{id}")
}

/// The ids of the cluster's tasks whose protection has not expired.
pub async fn protected_ids(state: &State, cluster: &str) -> Result<HashSet<String>, ApiError> {
    let at = now();
    let all = records::list_all::<Protection>(&*state.store, &format!("protection/{cluster}/")).await?;
    Ok(all
        .into_iter()
        .filter(|(_, p)| p.expires_at > at)
        .filter_map(|(k, _)| Some(k.rsplit('/').next()?.to_string()))
        .collect())
}

fn failure(ident: &str, reason: &str) -> Failure {
    Failure { arn: Some(ident.to_string()), reason: Some(reason.into()), detail: None }
}

fn validate_tasks(tasks: &[String], max: usize) -> Result<(), ApiError> {
    if tasks.is_empty() || tasks.len() > max {
        return Err(ApiError::invalid(format!("tasks must name 1 to {max} tasks.")));
    }
    Ok(())
}

/// The task `ident` names if it is a service's task: `Err` is the failure to answer.
async fn service_task(state: &State, cluster: &str, ident: &str) -> Result<Result<Stored, Failure>, ApiError> {
    let Some((stored, _)) = records::get::<Stored>(&*state.store, &key(cluster, id_of(ident))).await? else {
        return Ok(Err(failure(ident, "MISSING")));
    };
    if !stored.task.group.as_deref().unwrap_or_default().starts_with("service:") {
        return Ok(Err(failure(ident, "TASK_NOT_VALID")));
    }
    Ok(Ok(stored))
}

fn protected_task(stored: &Stored, protection: Option<&Protection>) -> ProtectedTask {
    let live = protection.filter(|p| p.expires_at > now());
    ProtectedTask {
        task_arn: stored.task.task_arn.clone(),
        protection_enabled: Some(live.is_some()),
        expiration_date: live.map(|p| p.expires_at),
    }
}

/// GetTaskProtection: each named service task's protection.
pub async fn get(
    state: Arc<State>,
    _call: Call,
    req: GetTaskProtectionRequest,
) -> Result<GetTaskProtectionResponse, ApiError> {
    let cluster = clusters::require_active_name(&state, req.cluster.as_deref()).await?;
    let idents = req.tasks.unwrap_or_default();
    validate_tasks(&idents, 100)?;
    let mut protected = Vec::new();
    let mut failures = Vec::new();
    for ident in idents {
        match service_task(&state, &cluster, &ident).await? {
            Ok(stored) => {
                let key = protection_key(&cluster, id_of(&ident));
                let p = records::get::<Protection>(&*state.store, &key).await?.map(|(p, _)| p);
                protected.push(protected_task(&stored, p.as_ref()));
            }
            Err(f) => failures.push(f),
        }
    }
    Ok(GetTaskProtectionResponse { protected_tasks: Some(protected), failures: Some(failures) })
}

/// UpdateTaskProtection: protects service tasks for `expiresInMinutes` (default 120), or
/// clears their protection.
pub async fn update(
    state: Arc<State>,
    _call: Call,
    req: UpdateTaskProtectionRequest,
) -> Result<UpdateTaskProtectionResponse, ApiError> {
    let cluster = clusters::require_active_name(&state, req.cluster.as_deref()).await?;
    let idents = req.tasks.unwrap_or_default();
    validate_tasks(&idents, 10)?;
    let enabled = req.protection_enabled.ok_or_else(|| ApiError::invalid("protectionEnabled is required."))?;
    let minutes = req.expires_in_minutes.unwrap_or(DEFAULT_MINUTES);
    if !(1..=MAX_MINUTES).contains(&minutes) {
        return Err(ApiError::invalid(format!("expiresInMinutes must be between 1 and {MAX_MINUTES}.")));
    }
    let mut protected = Vec::new();
    let mut failures = Vec::new();
    for ident in idents {
        let stored = match service_task(&state, &cluster, &ident).await? {
            Ok(s) => s,
            Err(f) => {
                failures.push(f);
                continue;
            }
        };
        let key = protection_key(&cluster, id_of(&ident));
        let protection = enabled.then(|| Protection { expires_at: now() + f64::from(minutes) * 60.0 });
        let txn = match &protection {
            Some(p) => Txn::new().put(key, records::encode(p)?, Expect::Any),
            None => Txn::new().delete(key, Expect::Any),
        };
        state.store.commit(txn).await.map_err(RecordError::from)?;
        protected.push(protected_task(&stored, protection.as_ref()));
    }
    Ok(UpdateTaskProtectionResponse { protected_tasks: Some(protected), failures: Some(failures) })
}
