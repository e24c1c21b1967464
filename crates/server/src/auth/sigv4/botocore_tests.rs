//! Cross-check against botocore, the signer inside the aws CLI v1 and boto3: requests it
//! signed (captured by `testdata/botocore_requests.py`, clock pinned) must verify.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

use super::{verify, AuthError, Caller, Request};

#[derive(Deserialize)]
struct Fixture {
    now: String,
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    requests: Vec<Captured>,
}

#[derive(Deserialize)]
struct Captured {
    name: String,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body_base64: String,
}

fn fixture() -> Fixture {
    serde_json::from_str(include_str!("testdata/botocore_requests.json")).expect("fixture parses")
}

fn now(fixture: &Fixture) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(&fixture.now, "%Y%m%dT%H%M%SZ").expect("fixture time").and_utc()
}

impl Captured {
    fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        map
    }

    fn body(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(&self.body_base64).expect("body")
    }

    fn verify_with(&self, now: DateTime<Utc>, akid: &str, secret: &str) -> Result<Caller, AuthError> {
        let headers = self.header_map();
        let body = self.body();
        let req =
            Request { method: &self.method, path: &self.path, query: &self.query, headers: &headers, body: &body };
        verify(&req, now, |id| (id == akid).then(|| secret.to_owned()))
    }
}

/// The service each captured request was signed for.
fn expected_service(name: &str) -> &'static str {
    if name.starts_with("iam") || name.starts_with("presigned") {
        "iam"
    } else if name.starts_with("sts") {
        "sts"
    } else {
        "ecs"
    }
}

#[test]
fn every_botocore_signed_request_verifies() {
    let fixture = fixture();
    assert!(fixture.requests.len() >= 9, "fixture lost cases");
    for captured in &fixture.requests {
        let caller = captured
            .verify_with(now(&fixture), &fixture.access_key_id, &fixture.secret_access_key)
            .unwrap_or_else(|e| panic!("{}: {e}", captured.name));
        assert_eq!(caller.access_key_id, fixture.access_key_id, "{}", captured.name);
        assert_eq!(caller.region, "us-east-1", "{}", captured.name);
        assert_eq!(caller.service, expected_service(&captured.name), "{}", captured.name);
        let token = captured.name.contains("session_token").then(|| fixture.session_token.clone());
        assert_eq!(caller.session_token, token, "{}", captured.name);
    }
}

#[test]
fn botocore_signed_requests_fail_with_another_secret() {
    let fixture = fixture();
    for captured in &fixture.requests {
        let err =
            captured.verify_with(now(&fixture), &fixture.access_key_id, "not-the-secret").expect_err(&captured.name);
        assert!(matches!(err, AuthError::SignatureMismatch), "{}: {err:?}", captured.name);
    }
}

#[test]
fn botocore_signed_request_expires_after_fifteen_minutes() {
    let fixture = fixture();
    let captured = &fixture.requests[0];
    let late = now(&fixture) + chrono::TimeDelta::minutes(16);
    let err = captured.verify_with(late, &fixture.access_key_id, &fixture.secret_access_key).expect_err("expired");
    assert_eq!(
        err.to_string(),
        "Signature expired: 20260102T030405Z is now earlier than 20260102T030505Z \
         (20260102T032005Z - 15 min.)"
    );
}
