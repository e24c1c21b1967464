//! The store layout of CloudWatch Logs data.
//!
//! ```text
//! logs/group/<group>                           a log group (GroupRecord)
//! logs/stream/<group>:<stream>                 a log stream (StreamRecord)
//! logs/event/<group>:<stream>:<ts:016><seq:012> one event (EventRecord)
//! logs/purge/<group>                           a deleted group whose events are still being removed
//! ```
//!
//! Group names cannot hold `:` and stream names cannot hold `:` either (the model's patterns
//! `[\.\-_/#A-Za-z0-9]+` and `[^:*]*`), so `:` ends each name unambiguously and a prefix
//! names exactly one group's or one stream's subtree. Event keys sort by timestamp, then by
//! the stream's ingestion sequence, so GetLogEvents and FilterLogEvents are range scans and
//! events of equal timestamp keep the order they were put in.

/// The key of a log group.
pub fn group(name: &str) -> String {
    format!("{GROUPS}{name}")
}

/// The prefix of every log group.
pub const GROUPS: &str = "logs/group/";

/// The prefix of the groups whose events a sweep still has to remove.
pub const PURGES: &str = "logs/purge/";

/// The purge marker of a deleted group.
pub fn purge(group: &str) -> String {
    format!("{PURGES}{group}")
}

/// The key of a log stream.
pub fn stream(group: &str, stream: &str) -> String {
    format!("logs/stream/{group}:{stream}")
}

/// The prefix of every stream of `group`.
pub fn streams(group: &str) -> String {
    format!("logs/stream/{group}:")
}

/// The prefix of every event of `group`, all streams.
pub fn group_events(group: &str) -> String {
    format!("logs/event/{group}:")
}

/// The prefix of every event of one stream.
pub fn events(group: &str, stream: &str) -> String {
    format!("logs/event/{group}:{stream}:")
}

/// An event's position within its stream: timestamp, then ingestion sequence.
pub fn position(timestamp: i64, seq: u64) -> String {
    format!("{}{seq:012}", time_bound(timestamp))
}

/// A bound that sorts before every event at `timestamp` and after every earlier one.
pub fn time_bound(timestamp: i64) -> String {
    format!("{:016}", timestamp.max(0))
}

/// The position an event key ends with, after its stream's prefix.
pub fn position_of<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    key.strip_prefix(prefix)
}

/// The `(timestamp, seq)` a position encodes; `None` for anything [`position`] did not make.
pub fn parse_position(pos: &str) -> Option<(i64, u64)> {
    if pos.len() != 28 || !pos.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((pos[..16].parse().ok()?, pos[16..].parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_sort_by_time_then_sequence() {
        let mut keys = vec![position(20, 1), position(3, 9), position(3, 10), position(1_700_000_000_000, 0)];
        keys.sort();
        assert_eq!(keys, vec![position(3, 9), position(3, 10), position(20, 1), position(1_700_000_000_000, 0)]);
        assert!(time_bound(3) < position(3, 0) && position(2, 999) < time_bound(3));
    }

    #[test]
    fn a_prefix_names_one_group_or_stream() {
        assert!(!events("a", "b/c").starts_with(&events("a/b", "c")));
        assert!(!stream("ab", "x").starts_with(&streams("a")));
        assert!(stream("a", "b:c").starts_with(&streams("a")));
        assert!(events("g", "s").starts_with(&group_events("g")));
        assert!(!events("g2", "s").starts_with(&group_events("g")));
    }

    #[test]
    fn positions_round_trip_and_garbage_is_refused() {
        assert_eq!(parse_position(&position(1_700_000_000_123, 42)), Some((1_700_000_000_123, 42)));
        assert_eq!(parse_position("12"), None);
        assert_eq!(parse_position(&format!("{}x", &position(1, 1)[..27])), None);
        assert_eq!(position_of("p/0001", "p/"), Some("0001"));
    }
}
