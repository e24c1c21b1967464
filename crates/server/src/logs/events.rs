//! Log events: PutLogEvents (one batch, one transaction) and GetLogEvents (a range scan
//! with forward and backward tokens).
//!
//! A `sequenceToken` that starts with [`SHIP_TOKEN_PREFIX`] names its batch: when it equals
//! the token of the last batch applied to the stream, the put succeeds without storing the
//! events again. The agent's log shipper resends an unacknowledged batch under the same
//! token after a restart, so a batch the server applied but could not acknowledge is not
//! duplicated. Other tokens are ignored, as AWS ignores them.

use std::sync::Arc;

use berth_api::logs_model::{
    GetLogEventsRequest, GetLogEventsResponse, InputLogEvent, OutputLogEvent, PutLogEventsRequest,
    PutLogEventsResponse, RejectedLogEventsInfo,
};
use berth_api::ApiError;
use berth_store::{Expect, ListQuery, StoreError, Txn};

use super::{
    check_stream_name, group_name, keys, now_ms, require_group, retention_cutoff, stream_not_found, EventRecord,
    StreamRecord,
};
use crate::records::{self, RecordError};
use crate::state::{Call, State};

/// The prefix of a sequence token that makes a put idempotent.
pub const SHIP_TOKEN_PREFIX: &str = "berth-ship:";
/// The largest PutLogEvents batch: messages in UTF-8 plus 26 bytes per event.
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// What each event adds to a batch's size besides its message.
pub const EVENT_OVERHEAD: usize = 26;
/// The longest span of timestamps one batch may cover.
const MAX_BATCH_SPAN_MS: i64 = 24 * 3_600_000;
/// Events older than this are rejected as too old.
const MAX_AGE_MS: i64 = 14 * 86_400_000;
/// Events further ahead than this are rejected as too new.
const MAX_AHEAD_MS: i64 = 2 * 3_600_000;
/// The most a GetLogEvents answer holds, in the batch-size measure.
const MAX_ANSWER_BYTES: usize = 1_048_576;
/// How often a put retries when another put on the same stream raced it.
const MAX_ATTEMPTS: usize = 64;

pub async fn put(state: Arc<State>, _call: Call, req: PutLogEventsRequest) -> Result<PutLogEventsResponse, ApiError> {
    let group_name = group_name(req.log_group_name, None)?;
    let stream_name = req.log_stream_name.unwrap_or_default();
    check_stream_name(&stream_name, "logStreamName")?;
    let events = req.log_events.unwrap_or_default();
    check_batch(&events)?;
    let group = require_group(&state, &group_name).await?;
    let now = now_ms();
    let (accepted, rejected) = classify(&events, now, retention_cutoff(&group, now));
    let stream_key = keys::stream(&group_name, &stream_name);
    let prefix = keys::events(&group_name, &stream_name);
    let batch = req.sequence_token.filter(|t| t.starts_with(SHIP_TOKEN_PREFIX));
    for _ in 0..MAX_ATTEMPTS {
        let (mut stream, version) =
            records::get::<StreamRecord>(&*state.store, &stream_key).await?.ok_or_else(stream_not_found)?;
        if batch.is_some() && stream.last_batch == batch {
            let token = Some(format!("{:056}", stream.next_seq));
            return Ok(PutLogEventsResponse {
                next_sequence_token: token,
                rejected_log_events_info: rejected,
                rejected_entity_info: None,
            });
        }
        if batch.is_some() {
            stream.last_batch.clone_from(&batch);
        }
        let mut txn = Txn::new();
        for e in &events[accepted.clone()] {
            let t = e.timestamp.unwrap_or_default();
            let record = EventRecord { t, i: now, m: e.message.clone().unwrap_or_default() };
            txn = txn.put(
                format!("{prefix}{}", keys::position(t, stream.next_seq)),
                records::encode(&record)?,
                Expect::Absent,
            );
            stream.next_seq += 1;
            stream.first_event_timestamp = Some(stream.first_event_timestamp.map_or(t, |f| f.min(t)));
            stream.last_event_timestamp = Some(stream.last_event_timestamp.map_or(t, |l| l.max(t)));
        }
        if !accepted.is_empty() {
            stream.last_ingestion_time = Some(now);
        }
        let token = format!("{:056}", stream.next_seq);
        let txn = txn.put(&stream_key, records::encode(&stream)?, Expect::Version(version));
        match state.store.commit(txn).await {
            Ok(_) => {
                return Ok(PutLogEventsResponse {
                    next_sequence_token: Some(token),
                    rejected_log_events_info: rejected,
                    rejected_entity_info: None,
                })
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(RecordError::from(e).into()),
        }
    }
    Err(RecordError::Store(StoreError::Conflict { key: stream_key }).into())
}

/// The batch rules AWS enforces: size, chronological order, and a span of at most 24 hours.
fn check_batch(events: &[InputLogEvent]) -> Result<(), ApiError> {
    let size: usize = events.iter().map(|e| e.message.as_ref().map_or(0, String::len) + EVENT_OVERHEAD).sum();
    if size > MAX_BATCH_BYTES {
        return Err(ApiError::invalid(format!(
            "Log event batch is {size} bytes; the maximum is {MAX_BATCH_BYTES} (each message in UTF-8 plus {EVENT_OVERHEAD} bytes)."
        )));
    }
    let times: Vec<i64> = events.iter().map(|e| e.timestamp.unwrap_or_default()).collect();
    if times.windows(2).any(|w| w[1] < w[0]) {
        return Err(ApiError::invalid("Log events in a single PutLogEvents request must be in chronological order."));
    }
    if let (Some(first), Some(last)) = (times.first(), times.last()) {
        if last - first > MAX_BATCH_SPAN_MS {
            return Err(ApiError::invalid(
                "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.",
            ));
        }
    }
    Ok(())
}

/// Which events of a chronological batch are stored: those neither too old, expired by the
/// group's retention, nor too new; the rest are reported as AWS reports them.
fn classify(
    events: &[InputLogEvent],
    now: i64,
    cutoff: Option<i64>,
) -> (std::ops::Range<usize>, Option<RejectedLogEventsInfo>) {
    let ts = |i: usize| events[i].timestamp.unwrap_or_default();
    let count_before = |bound: i64| (0..events.len()).take_while(|&i| ts(i) < bound).count();
    let too_old = count_before(now - MAX_AGE_MS);
    let expired = cutoff.map_or(0, count_before);
    let too_new = (0..events.len()).find(|&i| ts(i) > now + MAX_AHEAD_MS).unwrap_or(events.len());
    let start = too_old.max(expired).min(too_new);
    let index = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let info = RejectedLogEventsInfo {
        too_new_log_event_start_index: (too_new < events.len()).then(|| index(too_new)),
        too_old_log_event_end_index: (too_old > 0).then(|| index(too_old)),
        expired_log_event_end_index: (expired > 0).then(|| index(expired)),
    };
    let any = info != RejectedLogEventsInfo::default();
    (start..too_new, any.then_some(info))
}

/// Which way a GetLogEvents page reads, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cursor {
    /// Events strictly after this position.
    Forward(String),
    /// Events strictly before this position.
    Backward(String),
}

impl Cursor {
    fn parse(token: &str) -> Result<Self, ApiError> {
        let valid = |p: &str| (p.len() == 16 || p.len() == 28) && p.bytes().all(|b| b.is_ascii_digit());
        match (token.strip_prefix("f/"), token.strip_prefix("b/")) {
            (Some(p), _) if valid(p) => Ok(Self::Forward(p.to_string())),
            (_, Some(p)) if valid(p) => Ok(Self::Backward(p.to_string())),
            _ => Err(ApiError::invalid("The specified nextToken is invalid.")),
        }
    }
}

pub async fn get(state: Arc<State>, _call: Call, req: GetLogEventsRequest) -> Result<GetLogEventsResponse, ApiError> {
    let group_name = group_name(req.log_group_name, req.log_group_identifier)?;
    let stream_name = req.log_stream_name.unwrap_or_default();
    check_stream_name(&stream_name, "logStreamName")?;
    let group = require_group(&state, &group_name).await?;
    if records::get::<StreamRecord>(&*state.store, &keys::stream(&group_name, &stream_name)).await?.is_none() {
        return Err(stream_not_found());
    }
    let lower = keys::time_bound(req.start_time.unwrap_or(0).max(retention_cutoff(&group, now_ms()).unwrap_or(0)));
    let upper = req.end_time.map(keys::time_bound);
    let cursor = match req.next_token.as_deref() {
        Some(token) => Cursor::parse(token)?,
        None if req.start_from_head.unwrap_or(false) => Cursor::Forward(lower.clone()),
        None => Cursor::Backward(upper.clone().unwrap_or_else(|| "~".into())),
    };
    let limit = usize::try_from(req.limit.unwrap_or(10_000)).unwrap_or(10_000);
    let prefix = keys::events(&group_name, &stream_name);
    let (from, reverse) = match &cursor {
        Cursor::Forward(p) => (p.clone().max(lower.clone()), false),
        Cursor::Backward(p) => (upper.clone().map_or(p.clone(), |u| p.clone().min(u)), true),
    };
    let query = ListQuery {
        start_after: Some(format!("{prefix}{from}")),
        reverse,
        limit: Some(limit),
        ..ListQuery::prefix(&prefix)
    };
    let mut found = Vec::new();
    let mut bytes = 0;
    for (key, e) in records::list::<EventRecord>(&*state.store, query).await? {
        let pos = keys::position_of(&key, &prefix).unwrap_or_default().to_string();
        let in_range = if reverse { pos > lower } else { upper.as_ref().is_none_or(|u| &pos < u) };
        bytes += e.m.len() + EVENT_OVERHEAD;
        if !in_range || bytes > MAX_ANSWER_BYTES {
            break;
        }
        found.push((pos, e));
    }
    if reverse {
        found.reverse();
    }
    let (first, last) = match (found.first(), found.last()) {
        (Some((f, _)), Some((l, _))) => (f.clone(), l.clone()),
        _ => (from.clone(), from),
    };
    let events = found
        .into_iter()
        .map(|(_, e)| OutputLogEvent { timestamp: Some(e.t), message: Some(e.m), ingestion_time: Some(e.i) })
        .collect();
    Ok(GetLogEventsResponse {
        events: Some(events),
        next_forward_token: Some(format!("f/{last}")),
        next_backward_token: Some(format!("b/{first}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(times: &[i64]) -> Vec<InputLogEvent> {
        times.iter().map(|&t| InputLogEvent { timestamp: Some(t), message: Some("m".into()) }).collect()
    }

    #[test]
    fn batches_must_be_chronological_small_and_within_a_day() {
        assert!(check_batch(&batch(&[1, 2, 2, 3])).is_ok());
        assert!(check_batch(&batch(&[2, 1])).unwrap_err().message.contains("chronological"));
        assert!(check_batch(&batch(&[0, MAX_BATCH_SPAN_MS + 1])).unwrap_err().message.contains("24 hours"));
        let big = vec![InputLogEvent { timestamp: Some(1), message: Some("x".repeat(MAX_BATCH_BYTES)) }];
        assert!(check_batch(&big).unwrap_err().message.contains("maximum"));
    }

    #[test]
    fn too_old_expired_and_too_new_events_are_reported_not_stored() {
        let now = 100 * 86_400_000;
        let events = batch(&[now - MAX_AGE_MS - 1, now - 2 * 86_400_000, now, now + MAX_AHEAD_MS + 1]);
        let (kept, info) = classify(&events, now, Some(now - 86_400_000));
        assert_eq!(kept, 2..3);
        let info = info.unwrap();
        assert_eq!(info.too_old_log_event_end_index, Some(1));
        assert_eq!(info.expired_log_event_end_index, Some(2));
        assert_eq!(info.too_new_log_event_start_index, Some(3));
        assert_eq!(classify(&batch(&[now]), now, None), (0..1, None));
    }

    #[test]
    fn tokens_name_a_direction_and_a_position() {
        assert_eq!(
            Cursor::parse(&format!("f/{}", keys::position(5, 1))).unwrap(),
            Cursor::Forward(keys::position(5, 1))
        );
        assert_eq!(
            Cursor::parse(&format!("b/{}", keys::time_bound(5))).unwrap(),
            Cursor::Backward(keys::time_bound(5))
        );
        assert!(Cursor::parse("f/12x").is_err());
        assert!(Cursor::parse("x/0000000000000005").is_err());
    }
}
