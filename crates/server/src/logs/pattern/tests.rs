use super::*;

fn m(pattern: &str, message: &str) -> bool {
    Pattern::parse(pattern).unwrap().matches(message)
}

#[test]
fn empty_pattern_matches_everything() {
    assert!(m("", "anything"));
    assert!(m("   ", ""));
}

#[test]
fn terms_must_all_appear_case_sensitively() {
    assert!(m("ERROR", "[ERROR] disk full"));
    assert!(!m("ERROR", "error: disk full"));
    assert!(m("ERROR disk", "ERROR: the disk is full"));
    assert!(!m("ERROR disk", "ERROR: the cpu is hot"));
}

#[test]
fn quoted_phrases_alternatives_and_exclusions() {
    assert!(m("\"disk full\"", "ERROR disk full now"));
    assert!(!m("\"disk full\"", "full disk"));
    assert!(m("?ERROR ?WARN", "WARN low memory"));
    assert!(!m("?ERROR ?WARN", "INFO fine"));
    assert!(m("ERROR -retrying", "ERROR gave up"));
    assert!(!m("ERROR -retrying", "ERROR retrying in 1s"));
}

#[test]
fn json_patterns_compare_selected_members() {
    let line = r#"{"level":"error","ms":250,"user":{"id":7,"tags":["a","b"]},"ok":false,"gone":null}"#;
    assert!(m(r#"{ $.level = "error" }"#, line));
    assert!(m("{ $.level = err* }", line));
    assert!(!m(r#"{ $.level = "info" }"#, line));
    assert!(m("{ $.ms > 100 && $.user.id = 7 }", line));
    assert!(!m("{ $.ms > 300 }", line));
    assert!(m("{ ($.ms > 300) || $.user.tags[1] = \"b\" }", line));
    assert!(m("{ $.ok IS FALSE }", line));
    assert!(m("{ $.gone IS NULL }", line));
    assert!(m("{ $.missing NOT EXISTS }", line));
    assert!(m("{ $.level != \"info\" }", line));
    assert!(!m("{ $.level = \"error\" }", "not json at all"));
}

#[test]
fn space_delimited_patterns_match_fields() {
    let line = r#"127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 404 1534"#;
    assert!(m("[ip, identity, user, time, request, status, bytes]", line));
    assert!(m("[ip, identity, user, time, request, status = 404, bytes > 1000]", line));
    assert!(!m("[ip, identity, user, time, request, status = 200, bytes]", line));
    assert!(m("[ip = 127.0.0.*, ...]", line));
    assert!(m("[..., status = 4* || status = 5*, bytes]", line));
    assert!(!m("[ip, user]", line));
    assert!(m("[..., request = \"GET *\", status, bytes]", line));
}

#[test]
fn bad_patterns_are_errors() {
    for bad in ["{ $.a = ", "{ a = 1 }", "{ $.a ~ 1 }", "[a, ]", "\"open", "{ $.a = 1 ) }", "{ $.a IS MAYBE }"] {
        assert!(Pattern::parse(bad).is_err(), "{bad}");
    }
}
