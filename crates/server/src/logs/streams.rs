//! Log streams: CreateLogStream and DescribeLogStreams.

use std::sync::Arc;

use berth_api::logs_model::{
    CreateLogStreamRequest, DescribeLogStreamsRequest, DescribeLogStreamsResponse, LogStream, OrderBy,
};
use berth_api::{ApiError, Empty, ErrorKind};
use berth_store::{Expect, StoreError, Txn};

use super::{check_stream_name, group_arn, group_name, keys, now_ms, require_group, GroupRecord, StreamRecord};
use crate::pagination::{self, Page};
use crate::records::{self, RecordError};
use crate::state::{Call, State};

/// The largest DescribeLogStreams page.
const MAX_STREAMS: i32 = 50;

pub async fn create(state: Arc<State>, _call: Call, req: CreateLogStreamRequest) -> Result<Empty, ApiError> {
    let group = group_name(req.log_group_name, None)?;
    let name = req.log_stream_name.unwrap_or_default();
    check_stream_name(&name, "logStreamName")?;
    require_group(&state, &group).await?;
    let stream = StreamRecord {
        name: name.clone(),
        creation_time: now_ms(),
        first_event_timestamp: None,
        last_event_timestamp: None,
        last_ingestion_time: None,
        next_seq: 0,
        last_batch: None,
    };
    let txn = Txn::new().put(keys::stream(&group, &name), records::encode(&stream)?, Expect::Absent);
    match state.store.commit(txn).await {
        Ok(_) => Ok(Empty {}),
        Err(StoreError::Conflict { .. }) => {
            Err(ApiError::new(ErrorKind::ResourceAlreadyExists, "The specified log stream already exists"))
        }
        Err(e) => Err(RecordError::from(e).into()),
    }
}

pub async fn describe(
    state: Arc<State>,
    _call: Call,
    req: DescribeLogStreamsRequest,
) -> Result<DescribeLogStreamsResponse, ApiError> {
    let group_name = group_name(req.log_group_name, req.log_group_identifier)?;
    let by_time = req.order_by == Some(OrderBy::LastEventTime);
    if by_time && req.log_stream_name_prefix.is_some() {
        return Err(ApiError::invalid("Cannot order by LastEventTime with a logStreamNamePrefix."));
    }
    let group = require_group(&state, &group_name).await?;
    let prefix = format!("{}{}", keys::streams(&group_name), req.log_stream_name_prefix.unwrap_or_default());
    let descending = req.descending.unwrap_or(false);
    if by_time || descending {
        // A group's streams are few; another order than the key's reads them all, as one page.
        let stored = records::list_all::<StreamRecord>(&*state.store, &prefix).await?;
        let mut streams: Vec<LogStream> = stored.iter().map(|(_, s)| wire(&state, &group, s)).collect();
        if by_time {
            streams.sort_by_key(|s| s.last_event_timestamp.or(s.creation_time));
        }
        if descending {
            streams.reverse();
        }
        return Ok(DescribeLogStreamsResponse { log_streams: Some(streams), next_token: None });
    }
    let page = Page::from_request(req.limit, req.next_token.as_deref(), MAX_STREAMS)?;
    let (streams, next_token) =
        pagination::collect(&*state.store, &prefix, &page, |_, s: StreamRecord| Some(wire(&state, &group, &s))).await?;
    Ok(DescribeLogStreamsResponse { log_streams: Some(streams), next_token })
}

fn wire(state: &State, group: &GroupRecord, s: &StreamRecord) -> LogStream {
    LogStream {
        log_stream_name: Some(s.name.clone()),
        creation_time: Some(s.creation_time),
        first_event_timestamp: s.first_event_timestamp,
        last_event_timestamp: s.last_event_timestamp,
        last_ingestion_time: s.last_ingestion_time,
        upload_sequence_token: Some(format!("{:056}", s.next_seq)),
        arn: Some(format!("{}:log-stream:{}", group_arn(state, group), s.name)),
        stored_bytes: Some(0),
    }
}
