//! Log groups: CreateLogGroup, DeleteLogGroup, DescribeLogGroups and their retention.

use std::sync::Arc;

use berth_api::logs_model::{
    CreateLogGroupRequest, DeleteLogGroupRequest, DeleteRetentionPolicyRequest, DescribeLogGroupsRequest,
    DescribeLogGroupsResponse, LogGroup, LogGroupClass, PutRetentionPolicyRequest,
};
use berth_api::{ApiError, Empty, ErrorKind};
use berth_store::{Expect, StoreError, Txn};

use super::{
    check_group_name, from_identifier, group_arn, group_not_found, invalid_value, keys, now_ms, retention, GroupRecord,
};
use crate::pagination::{self, Page};
use crate::records::{self, Decision, RecordError};
use crate::state::{Call, State};

/// The retention periods CloudWatch Logs accepts, in days.
const RETENTION_DAYS: &[i32] =
    &[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

/// The largest DescribeLogGroups page.
const MAX_GROUPS: i32 = 50;

pub async fn create(state: Arc<State>, call: Call, req: CreateLogGroupRequest) -> Result<Empty, ApiError> {
    let name = req.log_group_name.unwrap_or_default();
    check_group_name(&name, "logGroupName")?;
    retention::purge_group(&*state.store, &name).await?;
    let group =
        GroupRecord { name: name.clone(), region: call.region, creation_time: now_ms(), retention_in_days: None };
    let txn = Txn::new().put(keys::group(&name), records::encode(&group)?, Expect::Absent);
    match state.store.commit(txn).await {
        Ok(_) => Ok(Empty {}),
        Err(StoreError::Conflict { .. }) => {
            Err(ApiError::new(ErrorKind::ResourceAlreadyExists, "The specified log group already exists"))
        }
        Err(e) => Err(RecordError::from(e).into()),
    }
}

/// Removes the group and marks its streams and events for removal, in one transaction.
pub async fn delete(state: Arc<State>, _call: Call, req: DeleteLogGroupRequest) -> Result<Empty, ApiError> {
    let name = req.log_group_name.unwrap_or_default();
    check_group_name(&name, "logGroupName")?;
    let Some((_, version)) = records::get::<GroupRecord>(&*state.store, &keys::group(&name)).await? else {
        return Err(group_not_found());
    };
    let txn = Txn::new().delete(keys::group(&name), Expect::Version(version)).put(
        keys::purge(&name),
        records::encode(&name)?,
        Expect::Any,
    );
    match state.store.commit(txn).await {
        Ok(_) => {}
        Err(StoreError::Conflict { .. }) => return Err(group_not_found()),
        Err(e) => return Err(RecordError::from(e).into()),
    }
    // The events may be many: they go in the background (and by the sweep after a crash).
    let store = Arc::clone(&state.store);
    tokio::spawn(async move {
        if let Err(error) = retention::purge_group(&*store, &name).await {
            tracing::warn!(group = %name, %error, "purging a deleted log group; the sweep retries");
        }
    });
    Ok(Empty {})
}

pub async fn describe(
    state: Arc<State>,
    _call: Call,
    req: DescribeLogGroupsRequest,
) -> Result<DescribeLogGroupsResponse, ApiError> {
    if req.log_group_name_prefix.is_some() && req.log_group_name_pattern.is_some() {
        return Err(ApiError::invalid(
            "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.",
        ));
    }
    let page = Page::from_request(req.limit, req.next_token.as_deref(), MAX_GROUPS)?;
    let prefix = keys::group(req.log_group_name_prefix.as_deref().unwrap_or_default());
    // AWS matches a pattern as a case-insensitive substring.
    let pattern = req.log_group_name_pattern.unwrap_or_default().to_lowercase();
    let only: Option<Vec<String>> =
        req.log_group_identifiers.map(|ids| ids.iter().map(|id| from_identifier(id)).collect());
    let (groups, next_token) = pagination::collect(&*state.store, &prefix, &page, |_, g: GroupRecord| {
        let named = only.as_ref().is_none_or(|names| names.contains(&g.name));
        (named && g.name.to_lowercase().contains(&pattern)).then(|| wire(&state, &g))
    })
    .await?;
    Ok(DescribeLogGroupsResponse { log_groups: Some(groups), next_token })
}

pub async fn put_retention(state: Arc<State>, _call: Call, req: PutRetentionPolicyRequest) -> Result<Empty, ApiError> {
    let name = req.log_group_name.unwrap_or_default();
    check_group_name(&name, "logGroupName")?;
    let days = req.retention_in_days.unwrap_or_default();
    if !RETENTION_DAYS.contains(&days) {
        let allowed = RETENTION_DAYS.iter().map(i32::to_string).collect::<Vec<_>>().join(", ");
        return Err(invalid_value(
            &days.to_string(),
            "retentionInDays",
            &format!("Member must satisfy enum value set: [{allowed}]"),
        ));
    }
    set_retention(&state, &name, Some(days)).await
}

pub async fn delete_retention(
    state: Arc<State>,
    _call: Call,
    req: DeleteRetentionPolicyRequest,
) -> Result<Empty, ApiError> {
    let name = req.log_group_name.unwrap_or_default();
    check_group_name(&name, "logGroupName")?;
    set_retention(&state, &name, None).await
}

async fn set_retention(state: &State, name: &str, days: Option<i32>) -> Result<Empty, ApiError> {
    records::update::<GroupRecord, _>(&*state.store, &keys::group(name), |current| {
        let mut group = current.ok_or_else(group_not_found)?;
        group.retention_in_days = days;
        Ok(Decision::Write(group, Empty {}))
    })
    .await
}

/// The wire form of a stored group.
fn wire(state: &State, g: &GroupRecord) -> LogGroup {
    let arn = group_arn(state, g);
    LogGroup {
        log_group_name: Some(g.name.clone()),
        creation_time: Some(g.creation_time),
        retention_in_days: g.retention_in_days,
        metric_filter_count: Some(0),
        arn: Some(format!("{arn}:*")),
        stored_bytes: Some(0),
        log_group_class: Some(LogGroupClass::Standard),
        log_group_arn: Some(arn),
        ..LogGroup::default()
    }
}
