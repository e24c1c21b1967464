//! Task definitions: RegisterTaskDefinition, DescribeTaskDefinition, ListTaskDefinitions,
//! ListTaskDefinitionFamilies, DeregisterTaskDefinition, DeleteTaskDefinitions.
//!
//! Layout in the store:
//! - `taskdef/FAMILY!REVISION` (zero-padded): the definition and its tags ([`Stored`]);
//! - `tdindex/STATUS/FAMILY!REVISION`: an empty key per revision, so that listing by
//!   status, family and order is a key-range scan. `!` sorts below every character a
//!   family may contain, so `web` and its revisions come before `web-b`, as in ECS;
//! - `tdfamily/FAMILY`: the last revision and the count of ACTIVE revisions.
//!
//! Every change to a family is one transaction over those keys, made under the family's
//! lock in this process. The family record is written with compare-and-swap, so
//! revisions are never reused even by another server on the same store. Within one
//! process the transaction is queued before the lock is released and the commit awaited
//! after, so registrations in one family pipeline into the store's group commit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berth_api::model::{
    DeleteTaskDefinitionsRequest, DeleteTaskDefinitionsResponse, DeregisterTaskDefinitionRequest,
    DeregisterTaskDefinitionResponse, DescribeTaskDefinitionRequest, DescribeTaskDefinitionResponse, Failure,
    ListTaskDefinitionFamiliesRequest, ListTaskDefinitionFamiliesResponse, ListTaskDefinitionsRequest,
    ListTaskDefinitionsResponse, RegisterTaskDefinitionRequest, RegisterTaskDefinitionResponse, SortOrder, Tag,
    TaskDefinition, TaskDefinitionFamilyStatus, TaskDefinitionField, TaskDefinitionStatus,
};
use berth_api::task_definition::{self as rules, Registration};
use berth_api::{ApiError, ResourceKind};
use berth_store::{BoxFuture, Expect, ListQuery, StoreError, Txn};
use serde::{Deserialize, Serialize};
use tokio::sync::OwnedMutexGuard;

use crate::pagination::{self, Page};
use crate::records::{self, RecordError};
use crate::state::{now, Call, State};
use crate::tags::{self, Tagged};

/// How often a family change is retried when another writer got there first.
const MAX_ATTEMPTS: usize = 8;

/// A stored task definition revision with its tags.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stored {
    /// What DescribeTaskDefinition answers.
    pub task_definition: TaskDefinition,
    /// The revision's tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
}

impl Tagged for Stored {
    fn tags_mut(&mut self) -> &mut Option<Vec<Tag>> {
        &mut self.tags
    }
}

/// The per-family record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Family {
    last_revision: i32,
    active_revisions: u32,
}

/// A family record as last written, with its per-key version (`None`: not stored yet).
#[derive(Debug, Clone, Default)]
struct Cached {
    family: Family,
    version: Option<u64>,
}

/// Per-family locks, each holding the family record as this process last wrote it.
#[derive(Default)]
pub struct Families {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Cached>>>>>,
}

type FamilyGuard = OwnedMutexGuard<Option<Cached>>;

impl Families {
    /// Locks `family`, loading its record if this process has not cached it.
    async fn lock(&self, state: &State, family: &str) -> Result<FamilyGuard, ApiError> {
        let lock = {
            let mut map = self.locks.lock().map_err(|_| ApiError::server("family lock map poisoned"))?;
            Arc::clone(map.entry(family.to_string()).or_default())
        };
        let mut guard = lock.lock_owned().await;
        if guard.is_none() {
            let loaded = records::get::<Family>(&*state.store, &family_key(family)).await?;
            *guard = Some(loaded.map_or_else(Cached::default, |(family, v)| Cached { family, version: Some(v) }));
        }
        Ok(guard)
    }
}

/// Ends a family name in keys; below `-`, `_`, digits and letters in byte order.
const REVISION_SEPARATOR: char = '!';

fn revision_key(family: &str, revision: i32) -> String {
    format!("taskdef/{family}{REVISION_SEPARATOR}{revision:010}")
}

fn index_prefix(status: TaskDefinitionStatus, family: Option<&str>) -> String {
    match family {
        Some(family) => format!("tdindex/{}/{family}{REVISION_SEPARATOR}", status.as_str()),
        None => format!("tdindex/{}/", status.as_str()),
    }
}

fn index_key(status: TaskDefinitionStatus, family: &str, revision: i32) -> String {
    format!("{}{revision:010}", index_prefix(status, Some(family)))
}

fn family_key(family: &str) -> String {
    format!("tdfamily/{family}")
}

/// The store key of `FAMILY:REVISION` (an ARN's resource id), if it is one.
pub fn key_for_id(id: &str) -> Option<String> {
    let (family, revision) = parse_family_revision(id)?;
    Some(revision_key(family, revision?))
}

/// `family`, `family:revision` or a task definition ARN, as (family, revision).
fn parse_reference(reference: &str) -> Option<(&str, Option<i32>)> {
    let id = match reference.strip_prefix("arn:") {
        Some(_) => reference.split_once(":task-definition/")?.1,
        None => reference,
    };
    parse_family_revision(id)
}

fn parse_family_revision(id: &str) -> Option<(&str, Option<i32>)> {
    match id.split_once(':') {
        None if !id.is_empty() => Some((id, None)),
        Some((family, rev)) if !family.is_empty() => {
            rev.parse().ok().filter(|r: &i32| *r > 0).map(|r| (family, Some(r)))
        }
        _ => None,
    }
}

/// From a key `.../FAMILY!REVISION` back to (family, revision).
fn split_key(key: &str) -> Option<(&str, i32)> {
    let (rest, revision) = key.rsplit_once(REVISION_SEPARATOR)?;
    let family = rest.rsplit_once('/').map_or(rest, |(_, f)| f);
    Some((family, revision.parse().ok()?))
}

fn unable_to_describe() -> ApiError {
    ApiError::client("Unable to describe task definition.")
}

fn does_not_exist() -> ApiError {
    ApiError::client("The specified task definition does not exist.")
}

/// Queues `txn` (so it is ordered before anything queued after it), records the new
/// family state in the cache, releases the family, and then awaits durability.
async fn commit_family_change(
    state: &State,
    mut guard: FamilyGuard,
    family: &str,
    updated: Family,
    txn: Txn,
) -> Result<(), RecordError> {
    let version = guard.as_ref().and_then(|c| c.version);
    let txn = txn.put(family_key(family), records::encode(&updated)?, records::expect(version));
    let pending: BoxFuture<'static, Result<u64, StoreError>> = state.store.commit(txn);
    *guard = Some(Cached { family: updated, version: Some(version.unwrap_or(0) + 1) });
    let lock = OwnedMutexGuard::mutex(&guard).clone();
    drop(guard);
    let result = pending.await;
    if result.is_err() {
        // What this process cached may now be ahead of the store: reload on next use.
        *lock.lock().await = None;
    }
    result.map(|_| ()).map_err(RecordError::from)
}

/// Runs a family change, retrying when a compare-and-swap lost to another writer.
async fn with_retry<T, F, Fut>(mut attempt: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Result<T, RecordError>, ApiError>>,
{
    for _ in 0..MAX_ATTEMPTS {
        match attempt().await? {
            Ok(t) => return Ok(t),
            Err(RecordError::Store(StoreError::Conflict { .. })) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(berth_api::ErrorKind::Conflict, "Too many concurrent changes to this family; retry."))
}

/// RegisterTaskDefinition: validates, allocates the next revision of the family, stores it.
pub async fn register(
    state: Arc<State>,
    call: Call,
    req: RegisterTaskDefinitionRequest,
) -> Result<RegisterTaskDefinitionResponse, ApiError> {
    let family = req.family.clone().unwrap_or_default();
    rules::validate_family(&family)?;
    let tags = req.tags.clone().unwrap_or_default();
    tags::validate(&tags)?;
    let stored = with_retry(|| register_once(&state, &call, &req, &family, &tags)).await?;
    Ok(RegisterTaskDefinitionResponse { task_definition: Some(stored.task_definition), tags: stored.tags })
}

async fn register_once(
    state: &State,
    call: &Call,
    req: &RegisterTaskDefinitionRequest,
    family: &str,
    tags: &[Tag],
) -> Result<Result<Stored, RecordError>, ApiError> {
    let guard = state.families.lock(state, family).await?;
    let current = guard.as_ref().map(|c| c.family.clone()).unwrap_or_default();
    let revision = current.last_revision + 1;
    let arn = state.arn(call, ResourceKind::TaskDefinition, format!("{family}:{revision}")).to_string();
    let registration = Registration { arn: &arn, revision, registered_at: now(), registered_by: &call.principal };
    let stored =
        Stored { task_definition: rules::build(req, &registration)?, tags: (!tags.is_empty()).then(|| tags.to_vec()) };
    let txn = Txn::new().put(revision_key(family, revision), records::encode(&stored)?, Expect::Absent).put(
        index_key(TaskDefinitionStatus::Active, family, revision),
        Vec::new(),
        Expect::Absent,
    );
    let updated = Family { last_revision: revision, active_revisions: current.active_revisions + 1 };
    Ok(commit_family_change(state, guard, family, updated, txn).await.map(|()| stored))
}

/// The stored revision a reference names: a given revision, or the family's latest ACTIVE one.
async fn resolve(state: &State, reference: &str) -> Result<Option<(Stored, u64)>, ApiError> {
    let Some((family, revision)) = parse_reference(reference) else {
        return Ok(None);
    };
    let revision = match revision {
        Some(r) => r,
        None => match latest_active(state, family).await? {
            Some(r) => r,
            None => return Ok(None),
        },
    };
    Ok(records::get::<Stored>(&*state.store, &revision_key(family, revision)).await?)
}

async fn latest_active(state: &State, family: &str) -> Result<Option<i32>, ApiError> {
    let query = ListQuery {
        reverse: true,
        limit: Some(1),
        keys_only: true,
        ..ListQuery::prefix(index_prefix(TaskDefinitionStatus::Active, Some(family)))
    };
    let keys = state.store.list(query).await.map_err(RecordError::from)?;
    Ok(keys.first().and_then(|r| split_key(&r.key)).map(|(_, rev)| rev))
}

/// The definition (with its tags) a reference names; a family means its latest ACTIVE revision.
pub async fn resolve_stored(state: &State, reference: &str) -> Result<Stored, ApiError> {
    resolve(state, reference).await?.map(|(s, _)| s).ok_or_else(unable_to_describe)
}

/// DescribeTaskDefinition: by family (latest ACTIVE), `family:revision` or ARN.
pub async fn describe(
    state: Arc<State>,
    _call: Call,
    req: DescribeTaskDefinitionRequest,
) -> Result<DescribeTaskDefinitionResponse, ApiError> {
    let reference = req.task_definition.unwrap_or_default();
    let (stored, _) = resolve(&state, &reference).await?.ok_or_else(unable_to_describe)?;
    let with_tags = req.include.unwrap_or_default().contains(&TaskDefinitionField::Tags);
    Ok(DescribeTaskDefinitionResponse {
        task_definition: Some(stored.task_definition),
        tags: with_tags.then(|| stored.tags.unwrap_or_default()),
    })
}

/// ListTaskDefinitions: ARNs by status (default ACTIVE), family prefix and order.
pub async fn list(
    state: Arc<State>,
    call: Call,
    req: ListTaskDefinitionsRequest,
) -> Result<ListTaskDefinitionsResponse, ApiError> {
    let page = Page::from_request(req.max_results, req.next_token.as_deref(), 100)?;
    let status = req.status.unwrap_or(TaskDefinitionStatus::Active);
    // Despite its name, ECS's familyPrefix here is a whole family name.
    let prefix = index_prefix(status, req.family_prefix.as_deref());
    let query = ListQuery {
        start_after: page.after.clone(),
        reverse: req.sort == Some(SortOrder::Desc),
        limit: Some(page.size),
        keys_only: true,
        ..ListQuery::prefix(prefix)
    };
    let keys = state.store.list(query).await.map_err(RecordError::from)?;
    let arns: Vec<String> = keys
        .iter()
        .filter_map(|r| split_key(&r.key))
        .map(|(family, rev)| state.arn(&call, ResourceKind::TaskDefinition, format!("{family}:{rev}")).to_string())
        .collect();
    let next_token = page.next_token(keys.len(), keys.last().map(|r| r.key.as_str()));
    Ok(ListTaskDefinitionsResponse { task_definition_arns: Some(arns), next_token })
}

/// ListTaskDefinitionFamilies: ACTIVE families have an ACTIVE revision, INACTIVE ones none;
/// both by default.
pub async fn list_families(
    state: Arc<State>,
    _call: Call,
    req: ListTaskDefinitionFamiliesRequest,
) -> Result<ListTaskDefinitionFamiliesResponse, ApiError> {
    let page = Page::from_request(req.max_results, req.next_token.as_deref(), 100)?;
    let status = req.status.unwrap_or(TaskDefinitionFamilyStatus::All);
    let prefix = format!("tdfamily/{}", req.family_prefix.unwrap_or_default());
    let (families, next_token) = pagination::collect(&*state.store, &prefix, &page, |key, family: Family| {
        let active = family.active_revisions > 0;
        let wanted = match status {
            TaskDefinitionFamilyStatus::Active => active,
            TaskDefinitionFamilyStatus::Inactive => !active,
            TaskDefinitionFamilyStatus::All => true,
        };
        wanted.then(|| key.trim_start_matches("tdfamily/").to_string())
    })
    .await?;
    Ok(ListTaskDefinitionFamiliesResponse { families: Some(families), next_token })
}

/// Moves one revision to `to`, answering it as stored after the change.
async fn transition(
    state: &State,
    family: &str,
    revision: i32,
    to: TaskDefinitionStatus,
) -> Result<Result<Stored, RecordError>, ApiError> {
    let guard = state.families.lock(state, family).await?;
    let key = revision_key(family, revision);
    let (mut stored, version) = records::get::<Stored>(&*state.store, &key).await?.ok_or_else(does_not_exist)?;
    let from = stored.task_definition.status.unwrap_or(TaskDefinitionStatus::Active);
    if from == to {
        return Ok(Ok(stored));
    }
    stored.task_definition.status = Some(to);
    match to {
        TaskDefinitionStatus::Inactive => stored.task_definition.deregistered_at = Some(now()),
        TaskDefinitionStatus::DeleteInProgress => stored.task_definition.delete_requested_at = Some(now()),
        TaskDefinitionStatus::Active => {}
    }
    let mut updated = guard.as_ref().map(|c| c.family.clone()).unwrap_or_default();
    if from == TaskDefinitionStatus::Active {
        updated.active_revisions = updated.active_revisions.saturating_sub(1);
    }
    let txn = Txn::new()
        .put(key, records::encode(&stored)?, Expect::Version(version))
        .delete(index_key(from, family, revision), Expect::Any)
        .put(index_key(to, family, revision), Vec::new(), Expect::Any);
    Ok(commit_family_change(state, guard, family, updated, txn).await.map(|()| stored))
}

/// `family:revision` or an ARN with a revision, as ECS requires for deregistration.
fn revision_reference(reference: &str) -> Result<(&str, i32), ApiError> {
    match parse_reference(reference) {
        Some((family, Some(revision))) => Ok((family, revision)),
        _ => Err(ApiError::invalid(format!(
            "Invalid revision number. Number: {}",
            reference.rsplit_once(':').map_or("", |(_, r)| r)
        ))),
    }
}

/// DeregisterTaskDefinition: the revision becomes INACTIVE.
pub async fn deregister(
    state: Arc<State>,
    _call: Call,
    req: DeregisterTaskDefinitionRequest,
) -> Result<DeregisterTaskDefinitionResponse, ApiError> {
    let reference = req.task_definition.unwrap_or_default();
    let (family, revision) = revision_reference(&reference)?;
    let stored = with_retry(|| transition(&state, family, revision, TaskDefinitionStatus::Inactive)).await?;
    Ok(DeregisterTaskDefinitionResponse { task_definition: Some(stored.task_definition) })
}

/// DeleteTaskDefinitions: INACTIVE revisions become DELETE_IN_PROGRESS; others are failures.
pub async fn delete(
    state: Arc<State>,
    _call: Call,
    req: DeleteTaskDefinitionsRequest,
) -> Result<DeleteTaskDefinitionsResponse, ApiError> {
    let references = req.task_definitions.unwrap_or_default();
    if references.is_empty() {
        return Err(ApiError::invalid("taskDefinitions must contain at least one task definition."));
    }
    if references.len() > 10 {
        return Err(ApiError::invalid("You can specify up to 10 task definitions in a single request."));
    }
    let mut deleted = Vec::new();
    let mut failures = Vec::new();
    for reference in references {
        match delete_one(&state, &reference).await {
            Ok(stored) => deleted.push(stored.task_definition),
            Err(e) => failures.push(Failure { arn: Some(reference), reason: Some(e.message), detail: None }),
        }
    }
    Ok(DeleteTaskDefinitionsResponse { task_definitions: Some(deleted), failures: Some(failures) })
}

async fn delete_one(state: &State, reference: &str) -> Result<Stored, ApiError> {
    let (family, revision) = revision_reference(reference)?;
    let (stored, _) =
        records::get::<Stored>(&*state.store, &revision_key(family, revision)).await?.ok_or_else(does_not_exist)?;
    if stored.task_definition.status == Some(TaskDefinitionStatus::Active) {
        return Err(ApiError::client(
            "The specified task definition is still in ACTIVE status. Please deregister the target and try again.",
        ));
    }
    with_retry(|| transition(state, family, revision, TaskDefinitionStatus::DeleteInProgress)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse() {
        assert_eq!(parse_reference("web"), Some(("web", None)));
        assert_eq!(parse_reference("web:3"), Some(("web", Some(3))));
        assert_eq!(parse_reference("arn:aws:ecs:us-east-1:123456789012:task-definition/web:3"), Some(("web", Some(3))));
        assert_eq!(parse_reference("web:0"), None);
        assert_eq!(parse_reference("web:x"), None);
        assert_eq!(parse_reference(""), None);
    }

    #[test]
    fn keys_split_back() {
        assert_eq!(split_key(&revision_key("web", 12)), Some(("web", 12)));
        assert_eq!(split_key(&index_key(TaskDefinitionStatus::Inactive, "a-b", 1)), Some(("a-b", 1)));
        assert!(revision_key("a", 2) < revision_key("a", 10));
        let b = TaskDefinitionStatus::Active;
        assert!(index_key(b, "web", 99) < index_key(b, "web-b", 1));
        assert!(index_key(b, "web", 99) < index_key(b, "web_b", 1));
        assert!(index_key(b, "web", 99) < index_key(b, "web0", 1));
    }
}
