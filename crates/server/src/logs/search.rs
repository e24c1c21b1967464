//! FilterLogEvents: the matching events of a group's streams, interleaved by time.
//!
//! Each stream is a range scan from the request's start (or the token's position); the
//! scans are merged in `(timestamp, stream, sequence)` order. A request reads a bounded
//! number of events, so a selective pattern over a large group answers a short (even
//! empty) page with a `nextToken`, as AWS does; the token is the last position every
//! stream has been read to, so paging resumes without skipping or repeating an event.

use std::sync::Arc;

use berth_api::logs_model::{FilterLogEventsRequest, FilterLogEventsResponse, FilteredLogEvent};
use berth_api::ApiError;
use berth_store::ListQuery;

use super::pattern::Pattern;
use super::{group_name, keys, now_ms, require_group, retention_cutoff, EventRecord, StreamRecord};
use crate::records;
use crate::state::{Call, State};

/// How many stored events one FilterLogEvents request reads at most.
const SCAN_BUDGET: usize = 100_000;
/// How many events a stream scan reads from the store at a time.
const SCAN_CHUNK: usize = 1_000;

/// A position in the merged order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Mark {
    timestamp: i64,
    stream: String,
    seq: u64,
}

impl Mark {
    fn token(&self) -> String {
        format!("{}:{}", keys::position(self.timestamp, self.seq), self.stream)
    }

    fn parse(token: &str) -> Result<Self, ApiError> {
        token
            .split_once(':')
            .and_then(|(pos, stream)| keys::parse_position(pos).map(|(timestamp, seq)| (timestamp, seq, stream)))
            .map(|(timestamp, seq, stream)| Mark { timestamp, stream: stream.to_string(), seq })
            .ok_or_else(|| ApiError::invalid("The specified nextToken is invalid."))
    }

    /// Where `stream`'s scan starts so that it yields only events after this mark.
    fn start_in(&self, stream: &str) -> String {
        match stream.cmp(self.stream.as_str()) {
            std::cmp::Ordering::Less => keys::position(self.timestamp, 999_999_999_999),
            std::cmp::Ordering::Equal => keys::position(self.timestamp, self.seq),
            std::cmp::Ordering::Greater => keys::time_bound(self.timestamp),
        }
    }
}

/// What one stream's scan found, and how far it got.
struct Scanned {
    events: Vec<(Mark, EventRecord)>,
    /// The last position read, when the stream has more to read.
    unfinished: Option<Mark>,
}

pub async fn filter(
    state: Arc<State>,
    _call: Call,
    req: FilterLogEventsRequest,
) -> Result<FilterLogEventsResponse, ApiError> {
    let group_name = group_name(req.log_group_name, req.log_group_identifier)?;
    if req.log_stream_names.is_some() && req.log_stream_name_prefix.is_some() {
        return Err(ApiError::invalid("logStreamNames and logStreamNamePrefix are mutually exclusive parameters."));
    }
    let pattern = Pattern::parse(req.filter_pattern.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let group = require_group(&state, &group_name).await?;
    let after = req.next_token.as_deref().map(Mark::parse).transpose()?;
    let start = req.start_time.unwrap_or(0).max(retention_cutoff(&group, now_ms()).unwrap_or(0));
    let end = req.end_time.map(keys::time_bound);
    let limit = usize::try_from(req.limit.unwrap_or(10_000)).unwrap_or(10_000);
    let prefix = format!("{}{}", keys::streams(&group_name), req.log_stream_name_prefix.unwrap_or_default());
    let mut streams: Vec<String> =
        records::list_all::<StreamRecord>(&*state.store, &prefix).await?.into_iter().map(|(_, s)| s.name).collect();
    if let Some(names) = &req.log_stream_names {
        streams.retain(|s| names.contains(s));
    }
    let budget = SCAN_BUDGET / streams.len().max(1);
    let mut found = Vec::new();
    let mut horizon: Option<Mark> = None;
    for stream in &streams {
        let from = after.as_ref().map_or(keys::time_bound(start), |m| m.start_in(stream)).max(keys::time_bound(start));
        let scan = Scan { state: &state, group: &group_name, stream, end: end.as_deref(), pattern: &pattern };
        let scanned = scan.run(from, limit, budget).await?;
        found.extend(scanned.events);
        if let Some(mark) = scanned.unfinished {
            horizon = Some(horizon.map_or(mark.clone(), |h| h.min(mark)));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found.retain(|(mark, _)| horizon.as_ref().is_none_or(|h| mark <= h));
    let truncated = found.len() > limit;
    found.truncate(limit);
    let next_token = match (truncated, found.last(), horizon) {
        (true, Some((last, _)), _) => Some(last.token()),
        (_, _, Some(h)) => Some(h.token()),
        _ => None,
    };
    let events = found
        .into_iter()
        .map(|(mark, e)| FilteredLogEvent {
            event_id: Some(event_id(&mark)),
            log_stream_name: Some(mark.stream),
            timestamp: Some(e.t),
            message: Some(e.m),
            ingestion_time: Some(e.i),
        })
        .collect();
    Ok(FilterLogEventsResponse { events: Some(events), searched_log_streams: Some(Vec::new()), next_token })
}

/// An id unique in the group: the position, and a stable hash (FNV-1a) of the stream name.
fn event_id(mark: &Mark) -> String {
    let hash =
        mark.stream.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("{}{hash:020}", keys::position(mark.timestamp, mark.seq))
}

/// One stream's range scan with the pattern applied.
struct Scan<'a> {
    state: &'a State,
    group: &'a str,
    stream: &'a str,
    end: Option<&'a str>,
    pattern: &'a Pattern,
}

impl Scan<'_> {
    /// Reads from after `from` until `limit` matches, the end bound, or `budget` events read.
    async fn run(&self, mut from: String, limit: usize, budget: usize) -> Result<Scanned, ApiError> {
        let prefix = keys::events(self.group, self.stream);
        let mut events = Vec::new();
        let mut read = 0;
        loop {
            let query = ListQuery {
                start_after: Some(format!("{prefix}{from}")),
                limit: Some(SCAN_CHUNK),
                ..ListQuery::prefix(&prefix)
            };
            let chunk = records::list::<EventRecord>(&*self.state.store, query).await?;
            let exhausted = chunk.len() < SCAN_CHUNK;
            for (key, e) in chunk {
                let pos = keys::position_of(&key, &prefix).unwrap_or_default().to_string();
                if self.end.is_some_and(|end| pos.as_str() >= end) {
                    return Ok(Scanned { events, unfinished: None });
                }
                let (timestamp, seq) = keys::parse_position(&pos).unwrap_or_default();
                read += 1;
                if self.pattern.matches(&e.m) {
                    events.push((Mark { timestamp, stream: self.stream.to_string(), seq }, e));
                }
                from = pos;
                if events.len() > limit || read >= budget {
                    let (timestamp, seq) = keys::parse_position(&from).unwrap_or_default();
                    return Ok(Scanned {
                        events,
                        unfinished: Some(Mark { timestamp, stream: self.stream.to_string(), seq }),
                    });
                }
            }
            if exhausted {
                return Ok(Scanned { events, unfinished: None });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_resumes_each_stream_after_itself() {
        let m = Mark { timestamp: 5, stream: "b".into(), seq: 3 };
        assert_eq!(Mark::parse(&m.token()).unwrap(), m);
        // An earlier stream must move past timestamp 5 entirely, a later one may still give 5.
        assert!(m.start_in("a") > keys::position(5, 1_000_000));
        assert_eq!(m.start_in("b"), keys::position(5, 3));
        assert!(m.start_in("c") < keys::position(5, 0));
        assert!(Mark::parse("garbage").is_err());
        let stream_with_colon = Mark { timestamp: 1, stream: "x:y".into(), seq: 0 };
        assert_eq!(Mark::parse(&stream_with_colon.token()).unwrap(), stream_with_colon);
    }
}
