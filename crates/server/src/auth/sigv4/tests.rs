//! Requests signed by the AWS SDK for Rust's signer (`aws-sigv4`) must verify; every
//! failure must carry AWS's error type and message.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4::SigningParams;
use aws_smithy_runtime_api::client::identity::Identity;
use axum::http::{self, HeaderValue};
use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

use super::{canonical, verify, AuthError, Caller, Request};

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// 2026-01-01T00:00:00Z, the signing time of every request here.
const SIGNED_AT_UNIX: u64 = 1_767_225_600;
const ENDPOINT: &str = "http://127.0.0.1:9270";

fn signed_at() -> DateTime<Utc> {
    DateTime::from_timestamp(SIGNED_AT_UNIX as i64, 0).expect("valid time")
}

fn secret_for(id: &str) -> Option<String> {
    (id == AKID).then(|| SECRET.to_owned())
}

/// How a test wants its request signed.
struct Signing {
    service: &'static str,
    session_token: Option<&'static str>,
    settings: SigningSettings,
    unsigned_payload: bool,
}

impl Signing {
    fn headers(service: &'static str) -> Self {
        Self { service, session_token: None, settings: SigningSettings::default(), unsigned_payload: false }
    }

    fn presigned(expires: Duration) -> Self {
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expires);
        Self { service: "ecs", session_token: None, settings, unsigned_payload: true }
    }
}

/// Signs `req` in place with the AWS SDK's signer.
fn sdk_sign(req: &mut http::Request<Vec<u8>>, signing: Signing) {
    let creds = Credentials::new(AKID, SECRET, signing.session_token.map(str::to_owned), None, "test");
    let identity: Identity = creds.into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name(signing.service)
        .time(SystemTime::UNIX_EPOCH + Duration::from_secs(SIGNED_AT_UNIX))
        .settings(signing.settings)
        .build()
        .expect("signing params")
        .into();
    let body = if signing.unsigned_payload { SignableBody::UnsignedPayload } else { SignableBody::Bytes(req.body()) };
    let headers = req.headers().iter().map(|(k, v)| (k.as_str(), v.to_str().expect("ascii header")));
    let signable = SignableRequest::new(req.method().as_str(), req.uri().to_string(), headers, body).expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    instructions.apply_to_request_http1x(req);
}

/// A request as a client would send it: `Host` set from the URI, like every HTTP client.
fn request(method: &str, path_and_query: &str, headers: &[(&str, &str)], body: &[u8]) -> http::Request<Vec<u8>> {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(format!("{ENDPOINT}{path_and_query}"))
        .header("host", "127.0.0.1:9270");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body.to_vec()).expect("request")
}

/// An ECS JSON-protocol call as botocore shapes it.
fn ecs_call(target: &str, body: &str) -> http::Request<Vec<u8>> {
    request(
        "POST",
        "/",
        &[("x-amz-target", target), ("content-type", "application/x-amz-json-1.1"), ("user-agent", "aws-cli/1.45.11")],
        body.as_bytes(),
    )
}

fn signed_ecs_call() -> http::Request<Vec<u8>> {
    let mut req = ecs_call("AmazonEC2ContainerServiceV20141113.ListClusters", "{}");
    sdk_sign(&mut req, Signing::headers("ecs"));
    req
}

fn check_at(req: &http::Request<Vec<u8>>, now: DateTime<Utc>) -> Result<Caller, AuthError> {
    let request = Request {
        method: req.method().as_str(),
        path: req.uri().path(),
        query: req.uri().query().unwrap_or(""),
        headers: req.headers(),
        body: req.body(),
    };
    verify(&request, now, secret_for)
}

fn check(req: &http::Request<Vec<u8>>) -> Result<Caller, AuthError> {
    check_at(req, signed_at())
}

fn set_header(req: &mut http::Request<Vec<u8>>, name: &'static str, value: &str) {
    req.headers_mut().insert(name, HeaderValue::from_str(value).expect("header value"));
}

fn authorization(req: &http::Request<Vec<u8>>) -> String {
    req.headers()["authorization"].to_str().expect("ascii").to_owned()
}

/// Asserts the error type and returns the message.
fn expect_error(result: Result<Caller, AuthError>, error_type: &str) -> String {
    let err = result.expect_err("request must be refused");
    assert_eq!(err.error_type(), error_type, "{err:?}");
    err.to_string()
}

// --- accepted -------------------------------------------------------------------------

#[test]
fn json_post_like_botocore_verifies() {
    let caller = check(&signed_ecs_call()).expect("verifies");
    assert_eq!(
        caller,
        Caller {
            access_key_id: AKID.to_owned(),
            region: "us-east-1".to_owned(),
            service: "ecs".to_owned(),
            session_token: None,
        }
    );
}

#[test]
fn form_encoded_query_protocol_post_verifies() {
    let mut req = request(
        "POST",
        "/",
        &[("content-type", "application/x-www-form-urlencoded; charset=utf-8")],
        b"Action=ListUsers&Version=2010-05-08&PathPrefix=%2Fa+b%2F",
    );
    sdk_sign(&mut req, Signing::headers("iam"));
    assert_eq!(check(&req).expect("verifies").service, "iam");
}

#[test]
fn get_with_odd_query_verifies() {
    let query = "?z=last&a=2&a=1&space=x%20y&plus=a+b&unicode=%E2%9C%93%C3%A9&empty=&flag\
                 &slash=%2F&tilde=~&star=*&pct=%25&bad=%zz";
    let mut req = request("GET", &format!("/caf%C3%A9/a%20b/{query}"), &[], b"");
    sdk_sign(&mut req, Signing::headers("ecs"));
    check(&req).expect("verifies");
}

#[test]
fn path_with_dot_and_empty_segments_verifies() {
    let mut req = request("GET", "/a//b/./c/../d/", &[], b"");
    sdk_sign(&mut req, Signing::headers("ecs"));
    check(&req).expect("verifies");
}

#[test]
fn session_token_is_verified_and_reported() {
    let mut req = ecs_call("AmazonEC2ContainerServiceV20141113.ListClusters", "{}");
    let mut signing = Signing::headers("ecs");
    signing.session_token = Some("IQoJb3JpZ2luX2VjEJr//token+with/slashes==");
    sdk_sign(&mut req, signing);
    let caller = check(&req).expect("verifies");
    assert_eq!(caller.session_token.as_deref(), Some("IQoJb3JpZ2luX2VjEJr//token+with/slashes=="));
}

#[test]
fn content_sha256_header_verifies() {
    let mut req = ecs_call("AmazonEC2ContainerServiceV20141113.ListClusters", "{\"maxResults\":5}");
    let mut signing = Signing::headers("ecs");
    signing.settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    sdk_sign(&mut req, signing);
    assert!(req.headers().contains_key("x-amz-content-sha256"));
    check(&req).expect("verifies");
}

#[test]
fn presigned_url_verifies() {
    let mut req = request("GET", "/?Action=ListClusters&x=1%202", &[], b"");
    sdk_sign(&mut req, Signing::presigned(Duration::from_secs(300)));
    assert!(req.uri().query().unwrap_or("").contains("X-Amz-Signature="));
    assert!(!req.headers().contains_key("authorization"));
    check(&req).expect("verifies");
    check_at(&req, signed_at() + TimeDelta::seconds(300)).expect("valid to the last second");
}

#[test]
fn presigned_url_over_body_hash_verifies() {
    let mut req = request("POST", "/", &[], b"{\"a\":1}");
    let mut signing = Signing::presigned(Duration::from_secs(60));
    signing.unsigned_payload = false;
    sdk_sign(&mut req, signing);
    check(&req).expect("verifies");
    *req.body_mut() = b"{\"a\":2}".to_vec();
    expect_error(check(&req), "InvalidSignatureException");
}

#[test]
fn presigned_url_with_session_token_reports_it() {
    let mut req = request("GET", "/", &[], b"");
    let mut signing = Signing::presigned(Duration::from_secs(60));
    signing.session_token = Some("presigned-token");
    sdk_sign(&mut req, signing);
    assert_eq!(check(&req).expect("verifies").session_token.as_deref(), Some("presigned-token"));
}

#[test]
fn unsigned_headers_may_change() {
    let mut req = signed_ecs_call();
    set_header(&mut req, "user-agent", "something else");
    req.headers_mut().insert("x-amzn-trace-id", HeaderValue::from_static("Root=1"));
    check(&req).expect("user-agent is not signed");
}

#[test]
fn clock_skew_of_exactly_fifteen_minutes_is_accepted() {
    let req = signed_ecs_call();
    check_at(&req, signed_at() + TimeDelta::minutes(15)).expect("late edge");
    check_at(&req, signed_at() - TimeDelta::minutes(15)).expect("early edge");
}

// --- refused --------------------------------------------------------------------------

#[test]
fn no_authentication_at_all() {
    let req = ecs_call("AmazonEC2ContainerServiceV20141113.ListClusters", "{}");
    let message = expect_error(check(&req), "MissingAuthenticationTokenException");
    assert_eq!(message, "Missing Authentication Token");
}

#[test]
fn tampered_body() {
    let mut req = signed_ecs_call();
    *req.body_mut() = b"{ }".to_vec();
    let message = expect_error(check(&req), "InvalidSignatureException");
    assert!(message.starts_with("The request signature we calculated does not match"), "{message}");
}

#[test]
fn tampered_signed_header() {
    let mut req = signed_ecs_call();
    set_header(&mut req, "x-amz-target", "AmazonEC2ContainerServiceV20141113.DeleteCluster");
    expect_error(check(&req), "InvalidSignatureException");
}

#[test]
fn tampered_host_method_path_and_query() {
    let signed = signed_ecs_call();
    let mut other_host = signed_ecs_call();
    set_header(&mut other_host, "host", "127.0.0.1:9271");
    expect_error(check(&other_host), "InvalidSignatureException");

    let headers = signed.headers().clone();
    for (method, path, query) in [("PUT", "/", ""), ("POST", "/x", ""), ("POST", "/", "a=1")] {
        let req = Request { method, path, query, headers: &headers, body: signed.body() };
        let err = verify(&req, signed_at(), secret_for).expect_err(method);
        assert!(matches!(err, AuthError::SignatureMismatch), "{method} {path}?{query}: {err:?}");
    }
}

#[test]
fn wrong_secret() {
    let req = signed_ecs_call();
    let request = Request { method: "POST", path: "/", query: "", headers: req.headers(), body: req.body() };
    let err = verify(&request, signed_at(), |_| Some("wrong".to_owned())).expect_err("wrong secret");
    assert_eq!(err.error_type(), "InvalidSignatureException");
    assert_eq!(
        err.to_string(),
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method. \
         Consult the service documentation for details."
    );
}

#[test]
fn unknown_access_key() {
    let req = signed_ecs_call();
    let request = Request { method: "POST", path: "/", query: "", headers: req.headers(), body: req.body() };
    let err = verify(&request, signed_at(), |_| None).expect_err("unknown key");
    assert_eq!(err.error_type(), "UnrecognizedClientException");
    assert_eq!(err.to_string(), "The security token included in the request is invalid.");
}

#[test]
fn signature_expired() {
    let req = signed_ecs_call();
    let message = expect_error(check_at(&req, signed_at() + TimeDelta::minutes(30)), "InvalidSignatureException");
    assert_eq!(
        message,
        "Signature expired: 20260101T000000Z is now earlier than 20260101T001500Z \
         (20260101T003000Z - 15 min.)"
    );
}

#[test]
fn signature_not_yet_current() {
    let req = signed_ecs_call();
    let message = expect_error(check_at(&req, signed_at() - TimeDelta::minutes(30)), "InvalidSignatureException");
    assert_eq!(
        message,
        "Signature not yet current: 20260101T000000Z is still later than 20251231T234500Z \
         (20251231T233000Z + 15 min.)"
    );
}

#[test]
fn presigned_url_expired() {
    let mut req = request("GET", "/", &[], b"");
    sdk_sign(&mut req, Signing::presigned(Duration::from_secs(300)));
    let message = expect_error(check_at(&req, signed_at() + TimeDelta::seconds(301)), "InvalidSignatureException");
    assert_eq!(
        message,
        "Signature expired: 20260101T000000Z is now earlier than 20260101T000001Z \
         (20260101T000501Z - 300 sec.)"
    );
}

#[test]
fn presigned_url_with_tampered_query() {
    let mut req = request("GET", "/?Action=ListClusters", &[], b"");
    sdk_sign(&mut req, Signing::presigned(Duration::from_secs(300)));
    let query = req.uri().query().unwrap_or("").replace("ListClusters", "DeleteCluster");
    let request = Request { method: "GET", path: "/", query: &query, headers: req.headers(), body: b"" };
    let err = verify(&request, signed_at(), secret_for).expect_err("tampered");
    assert!(matches!(err, AuthError::SignatureMismatch), "{err:?}");
}

#[test]
fn presigned_url_missing_parameters() {
    let headers = http::HeaderMap::new();
    let req = Request {
        method: "GET",
        path: "/",
        query: "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20260101T000000Z",
        headers: &headers,
        body: b"",
    };
    let message = expect_error(verify(&req, signed_at(), secret_for), "IncompleteSignatureException");
    assert!(message.starts_with("Query-string authentication version 4 requires"), "{message}");

    let req = Request { query: "X-Amz-Algorithm=AWS4-HMAC-SHA1", ..req };
    let message = expect_error(verify(&req, signed_at(), secret_for), "IncompleteSignatureException");
    assert_eq!(message, "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"");
}

#[test]
fn presigned_url_expires_over_a_week() {
    let mut req = request("GET", "/", &[], b"");
    sdk_sign(&mut req, Signing::presigned(Duration::from_secs(300)));
    let query = req.uri().query().unwrap_or("").replace("X-Amz-Expires=300", "X-Amz-Expires=604801");
    let request = Request { method: "GET", path: "/", query: &query, headers: req.headers(), body: b"" };
    let message = expect_error(verify(&request, signed_at(), secret_for), "IncompleteSignatureException");
    assert_eq!(message, "X-Amz-Expires must be less than a week (in seconds) that is 604800");
}

#[test]
fn header_and_query_authentication_at_once() {
    let mut req = signed_ecs_call();
    *req.uri_mut() = format!("{ENDPOINT}/?X-Amz-Algorithm=AWS4-HMAC-SHA256").parse().expect("uri");
    let message = expect_error(check(&req), "IncompleteSignatureException");
    assert!(message.starts_with("Only one auth mechanism allowed"), "{message}");
}

#[test]
fn authorization_without_sigv4_parameters() {
    let mut req = ecs_call("AmazonEC2ContainerServiceV20141113.ListClusters", "{}");
    set_header(&mut req, "authorization", "Bearer eyJhbGciOi");
    let message = expect_error(check(&req), "IncompleteSignatureException");
    assert_eq!(
        message,
        "Authorization header requires 'Credential' parameter. \
         Authorization header requires 'Signature' parameter. \
         Authorization header requires 'SignedHeaders' parameter. \
         Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. \
         Authorization=Bearer eyJhbGciOi"
    );
}

#[test]
fn authorization_missing_the_signature() {
    let mut req = signed_ecs_call();
    let auth = authorization(&req);
    let without = auth.split(", Signature=").next().unwrap_or_default().to_owned();
    set_header(&mut req, "authorization", &without);
    let message = expect_error(check(&req), "IncompleteSignatureException");
    assert_eq!(message, format!("Authorization header requires 'Signature' parameter. Authorization={without}"));
}

#[test]
fn authorization_part_without_equal_sign() {
    let mut req = signed_ecs_call();
    let auth = authorization(&req).replace("SignedHeaders=", "SignedHeaders");
    set_header(&mut req, "authorization", &auth);
    let message = expect_error(check(&req), "IncompleteSignatureException");
    assert!(message.starts_with("Invalid key=value pair (missing equal-sign) in Authorization header"), "{message}");
}

#[test]
fn missing_date() {
    let mut req = signed_ecs_call();
    req.headers_mut().remove("x-amz-date");
    let message = expect_error(check(&req), "IncompleteSignatureException");
    assert!(
        message.contains("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."),
        "{message}"
    );
}

#[test]
fn malformed_date() {
    let mut req = signed_ecs_call();
    set_header(&mut req, "x-amz-date", "2026-01-01T00:00:00Z");
    let message = expect_error(check(&req), "IncompleteSignatureException");
    assert_eq!(
        message,
        "Date must be in ISO-8601 'basic format'. Got '2026-01-01T00:00:00Z'. \
         See http://en.wikipedia.org/wiki/ISO_8601"
    );
}

#[test]
fn host_not_signed() {
    let mut req = signed_ecs_call();
    let auth = authorization(&req).replace("host;", "");
    set_header(&mut req, "authorization", &auth);
    let message = expect_error(check(&req), "IncompleteSignatureException");
    assert_eq!(message, "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
}

#[test]
fn date_not_signed() {
    let mut req = signed_ecs_call();
    let auth = authorization(&req).replace(";x-amz-date", "");
    set_header(&mut req, "authorization", &auth);
    let message = expect_error(check(&req), "IncompleteSignatureException");
    assert_eq!(message, "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.");
}

#[test]
fn bad_credential_scope() {
    let signed_scope = "Credential=AKIDEXAMPLE/20260101/us-east-1/ecs/aws4_request";
    let cases = [
        ("Credential=/20260101/us-east-1/ecs/aws4_request", "IncompleteSignatureException"),
        ("Credential=AKIDEXAMPLE/20260101/us-east-1/ecs", "IncompleteSignatureException"),
        ("Credential=AKIDEXAMPLE/20260101/us-east-1/ecs/aws4_request/x", "IncompleteSignatureException"),
        ("Credential=AKIDEXAMPLE/20260101/us-east-1/ecs/aws5_request", "IncompleteSignatureException"),
        ("Credential=AKIDEXAMPLE/20260101//ecs/aws4_request", "IncompleteSignatureException"),
        ("Credential=AKIDEXAMPLE/20251231/us-east-1/ecs/aws4_request", "InvalidSignatureException"),
        ("Credential=AKIDEXAMPLE/20260101/us-west-2/ecs/aws4_request", "InvalidSignatureException"),
        ("Credential=AKIDEXAMPLE/20260101/us-east-1/sts/aws4_request", "InvalidSignatureException"),
    ];
    for (scope, error_type) in cases {
        let mut req = signed_ecs_call();
        let auth = authorization(&req).replace(signed_scope, scope);
        set_header(&mut req, "authorization", &auth);
        expect_error(check(&req), error_type);
    }
    let mut req = signed_ecs_call();
    let auth = authorization(&req).replace("20260101/", "20251231/");
    set_header(&mut req, "authorization", &auth);
    assert_eq!(
        check(&req).expect_err("date mismatch").to_string(),
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: \
         '20251231' != '20260101', from '20260101T000000Z'."
    );
}

#[test]
fn content_sha256_header_must_match_the_body() {
    let mut req = ecs_call("AmazonEC2ContainerServiceV20141113.ListClusters", "{}");
    let mut signing = Signing::headers("ecs");
    signing.settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    sdk_sign(&mut req, signing);
    *req.body_mut() = b"{\"x\":1}".to_vec();
    let message = expect_error(check(&req), "InvalidSignatureException");
    assert_eq!(message, "The provided 'x-amz-content-sha256' header does not match what was computed.");
}

#[test]
fn unsigned_payload_header_is_honoured() {
    // botocore sends this for operations modelled without payload signing.
    let mut req = ecs_call("AmazonEC2ContainerServiceV20141113.ListClusters", "{}");
    set_header(&mut req, "x-amz-content-sha256", "UNSIGNED-PAYLOAD");
    let mut signing = Signing::headers("ecs");
    signing.unsigned_payload = true;
    sdk_sign(&mut req, signing);
    check(&req).expect("verifies");
}

#[test]
fn every_error_maps_to_an_aws_error_type() {
    let cases = [
        (AuthError::MissingAuthenticationToken, "MissingAuthenticationTokenException"),
        (AuthError::IncompleteSignature(String::new()), "IncompleteSignatureException"),
        (AuthError::UnrecognizedClient, "UnrecognizedClientException"),
        (AuthError::SignatureMismatch, "InvalidSignatureException"),
        (AuthError::ContentHashMismatch, "InvalidSignatureException"),
    ];
    for (err, error_type) in cases {
        assert_eq!(err.error_type(), error_type);
    }
}

// --- canonical forms ------------------------------------------------------------------

#[test]
fn canonical_uri_encodes_the_encoded_path_again() {
    assert_eq!(canonical::uri(""), "/");
    assert_eq!(canonical::uri("/"), "/");
    assert_eq!(canonical::uri("/a%20b/c d"), "/a%2520b/c%20d");
    assert_eq!(canonical::uri("/a//b/./c/../d/"), "/a/b/d/");
    assert_eq!(canonical::uri("/a/b/.."), "/a/");
    assert_eq!(canonical::uri("/.."), "/");
    assert_eq!(canonical::uri("/~user/$x"), "/~user/%24x");
}

#[test]
fn canonical_query_sorts_and_reencodes() {
    assert_eq!(canonical::query("", false), "");
    assert_eq!(
        canonical::query("b=2&a=2&a=1&flag&e=&&sp=x+y%20z&u=%e2%9c%93&t=~*", false),
        "a=1&a=2&b=2&e=&flag=&sp=x%20y%20z&t=~%2A&u=%E2%9C%93"
    );
    assert_eq!(canonical::query("X-Amz-Signature=abc&a=1", true), "a=1");
    assert_eq!(canonical::query("X-Amz-Signature=abc&a=1", false), "X-Amz-Signature=abc&a=1");
}

// --- property: whatever the SDK signs, berth verifies ----------------------------------

/// A path segment in its raw (already percent-encoded) form, sometimes a dot segment.
fn path_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(".".to_owned()),
        1 => Just("..".to_owned()),
        1 => Just(String::new()),
        8 => "[a-zA-Z0-9 ._~!$&'()*+,;=:@%é✓-]{1,8}".prop_map(|s| encode_path_segment(&s)),
    ]
}

/// Percent-encodes what a URI path cannot hold raw; leaves sub-delims as clients do.
fn encode_path_segment(s: &str) -> String {
    const PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'%')
        .add(b'"')
        .add(b'#')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}')
        .add(b'/');
    percent_encoding::utf8_percent_encode(s, PATH).to_string()
}

/// A query parameter in raw form: strictly encoded, spaces sometimes as `+`, sometimes
/// without `=`.
fn query_param() -> impl Strategy<Value = String> {
    ("[a-zA-Z0-9 +&=%é✓._~-]{0,6}", "[a-zA-Z0-9 +&=%/é✓._~-]{0,6}", 0..3u8).prop_map(|(k, v, form)| {
        const STRICT: &percent_encoding::AsciiSet =
            &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
        let enc = |s: &str| {
            let e = percent_encoding::utf8_percent_encode(s, STRICT).to_string();
            if form == 1 {
                e.replace("%20", "+")
            } else {
                e
            }
        };
        match (form, v.is_empty()) {
            (2, true) => enc(&k),
            _ => format!("{}={}", enc(&k), enc(&v)),
        }
    })
}

fn signed_random_request(
    method: &str,
    segments: &[String],
    params: &[String],
    header_value: &str,
    body: &[u8],
) -> Option<http::Request<Vec<u8>>> {
    let path = format!("/{}", segments.join("/"));
    let query = params.iter().filter(|p| !p.is_empty()).cloned().collect::<Vec<_>>().join("&");
    let target = if query.is_empty() { path } else { format!("{path}?{query}") };
    // Some generated targets are not valid URIs for the `http` crate; skip those.
    let uri: http::Uri = format!("{ENDPOINT}{target}").parse().ok()?;
    let mut req = request(method, "/", &[("x-amz-meta-note", header_value)], body);
    *req.uri_mut() = uri;
    sdk_sign(&mut req, Signing::headers("ecs"));
    Some(req)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sdk_signed_requests_verify_and_any_body_byte_change_fails(
        method in prop_oneof![Just("GET"), Just("POST"), Just("PUT"), Just("DELETE")],
        segments in prop::collection::vec(path_segment(), 0..5),
        params in prop::collection::vec(query_param(), 0..5),
        header_value in "[ -~]{0,20}",
        body in prop::collection::vec(any::<u8>(), 0..256),
        flip in any::<prop::sample::Index>(),
        xor in 1..=255u8,
    ) {
        let header_value = header_value.trim_matches(|c| c == ' ' || c == '\t');
        let Some(mut req) = signed_random_request(method, &segments, &params, header_value, &body) else {
            return Ok(());
        };
        prop_assert!(check(&req).is_ok(), "{:?} {}", req.uri(), check(&req).err().map(|e| e.to_string()).unwrap_or_default());
        if !body.is_empty() {
            let i = flip.index(body.len());
            req.body_mut()[i] ^= xor;
            let err = check(&req).err();
            prop_assert!(matches!(err, Some(AuthError::SignatureMismatch)), "{:?}", err);
        }
    }
}
