//! The CloudWatch Logs API subset berth serves (`X-Amz-Target: Logs_20140328.*`, SigV4
//! service `logs`): log groups, log streams, events, filter patterns and retention.
//!
//! # Behavior
//!
//! - Events are stored one key each, indexed by group, stream, timestamp and ingestion
//!   order ([`keys`]), so reads are range scans; a PutLogEvents batch (up to 10,000 events,
//!   1 MiB) is one store transaction together with its stream's record, so it is durable
//!   and whole when answered.
//! - Retention is enforced twice: reads never answer events older than the group's
//!   retention, and a background sweep ([`retention`]) deletes them.
//! - DeleteLogGroup removes the group and its streams at once; its events are removed by
//!   the same sweep, and a group created again under the name starts empty.
//!
//! # Limitations
//!
//! Sequence tokens are answered but not checked (as on AWS since 2023), except berth's own
//! `berth-ship:` tokens, which make the agent's resent batch idempotent. StartLiveTail (an
//! event stream) is not served: `aws logs tail --follow` polls FilterLogEvents instead.
//! There is no KMS, metric filter, subscription, query or export support.

mod events;
mod groups;
pub mod keys;
mod pattern;
pub mod retention;
mod search;
mod streams;

use berth_api::logs_model::ops;
use berth_api::{ApiError, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::operations::Operations;
use crate::state::State;

/// Adds every Logs operation to the table.
pub fn operations(t: &mut Operations) {
    t.add::<ops::CreateLogGroup, _, _>(groups::create);
    t.add::<ops::DeleteLogGroup, _, _>(groups::delete);
    t.add::<ops::DescribeLogGroups, _, _>(groups::describe);
    t.add::<ops::PutRetentionPolicy, _, _>(groups::put_retention);
    t.add::<ops::DeleteRetentionPolicy, _, _>(groups::delete_retention);
    t.add::<ops::CreateLogStream, _, _>(streams::create);
    t.add::<ops::DescribeLogStreams, _, _>(streams::describe);
    t.add::<ops::PutLogEvents, _, _>(events::put);
    t.add::<ops::GetLogEvents, _, _>(events::get);
    t.add::<ops::FilterLogEvents, _, _>(search::filter);
}

/// A stored log group.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupRecord {
    pub name: String,
    pub region: String,
    pub creation_time: i64,
    pub retention_in_days: Option<i32>,
}

/// A stored log stream, with the sequence its next event gets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamRecord {
    pub name: String,
    pub creation_time: i64,
    pub first_event_timestamp: Option<i64>,
    pub last_event_timestamp: Option<i64>,
    pub last_ingestion_time: Option<i64>,
    pub next_seq: u64,
    /// The `berth-ship:` sequence token of the last batch applied (see [`events`]).
    #[serde(default)]
    pub last_batch: Option<String>,
}

/// A stored event, short member names because there are many.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventRecord {
    /// Timestamp (ms).
    pub t: i64,
    /// Ingestion time (ms).
    pub i: i64,
    /// Message.
    pub m: String,
}

/// Now in epoch milliseconds, the Logs API's time unit.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The earliest timestamp a group's retention keeps, if it has one.
pub fn retention_cutoff(group: &GroupRecord, now: i64) -> Option<i64> {
    group.retention_in_days.map(|days| now - i64::from(days) * 86_400_000)
}

fn group_not_found() -> ApiError {
    ApiError::new(ErrorKind::ResourceNotFound, "The specified log group does not exist.")
}

fn stream_not_found() -> ApiError {
    ApiError::new(ErrorKind::ResourceNotFound, "The specified log stream does not exist.")
}

/// A Logs input error: AWS's "1 validation error" wording as InvalidParameterException.
fn invalid_value(value: &str, member: &str, constraint: &str) -> ApiError {
    ApiError::invalid(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
    ))
}

/// A group name as the model's pattern allows it.
fn check_group_name(name: &str, member: &str) -> Result<(), ApiError> {
    if name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/#".contains(&b)) {
        Ok(())
    } else {
        Err(invalid_value(name, member, r"Member must satisfy regular expression pattern: [\.\-_/#A-Za-z0-9]+"))
    }
}

/// A stream name as the model's pattern allows it.
fn check_stream_name(name: &str, member: &str) -> Result<(), ApiError> {
    if name.contains([':', '*']) {
        Err(invalid_value(name, member, "Member must satisfy regular expression pattern: [^:*]*"))
    } else {
        Ok(())
    }
}

/// The group a request names by `logGroupName` or `logGroupIdentifier` (a name or an ARN),
/// exactly one of them, as AWS requires.
fn group_name(name: Option<String>, identifier: Option<String>) -> Result<String, ApiError> {
    let name = match (name, identifier) {
        (Some(n), None) => n,
        (None, Some(id)) => from_identifier(&id),
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("LogGroup name and LogGroup ARN are mutually exclusive parameters."))
        }
        (None, None) => return Err(ApiError::invalid("Either LogGroupName or LogGroupIdentifier must be specified.")),
    };
    check_group_name(&name, "logGroupName")?;
    Ok(name)
}

/// `arn:aws:logs:R:A:log-group:NAME[:*]` -> `NAME`; anything else is taken as a name.
fn from_identifier(id: &str) -> String {
    match id.split_once(":log-group:") {
        Some((head, rest)) if head.starts_with("arn:") => rest.strip_suffix(":*").unwrap_or(rest).to_string(),
        _ => id.to_string(),
    }
}

/// The group's ARN without the trailing `:*` (`logGroupArn`).
fn group_arn(state: &State, group: &GroupRecord) -> String {
    format!("arn:aws:logs:{}:{}:log-group:{}", group.region, state.account, group.name)
}

/// The group record, or ResourceNotFoundException.
async fn require_group(state: &State, name: &str) -> Result<GroupRecord, ApiError> {
    crate::records::get::<GroupRecord>(&*state.store, &keys::group(name))
        .await?
        .map(|(g, _)| g)
        .ok_or_else(group_not_found)
}

/// Missing-member errors the model check raises in ECS's words, in the Logs API's.
pub fn input_error(e: ApiError) -> ApiError {
    match e.kind {
        ErrorKind::Client => {
            let member = e.message.strip_suffix(" can not be blank.").unwrap_or(&e.message);
            let mut chars = member.chars();
            let member: String = chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default();
            ApiError::invalid(format!(
                "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
            ))
        }
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_names_or_arns() {
        assert_eq!(from_identifier("/ecs/web"), "/ecs/web");
        assert_eq!(from_identifier("arn:aws:logs:us-east-1:1:log-group:/ecs/web:*"), "/ecs/web");
        assert_eq!(from_identifier("arn:aws:logs:us-east-1:1:log-group:/ecs/web"), "/ecs/web");
        assert!(group_name(Some("a".into()), Some("a".into())).is_err());
        assert!(group_name(None, None).is_err());
        assert_eq!(group_name(Some("bad:name".into()), None).unwrap_err().kind, ErrorKind::InvalidParameter);
    }

    #[test]
    fn missing_members_read_as_logs_errors() {
        let e = input_error(ApiError::client("LogGroupName can not be blank."));
        assert_eq!(e.kind, ErrorKind::InvalidParameter);
        assert!(e.message.contains("Value null at 'logGroupName'"), "{}", e.message);
    }
}
