//! AWS Signature Version 4 verification of incoming requests.
//!
//! # Behavior
//!
//! [`verify`] recomputes the signature the client made, from the request exactly as it
//! arrived, and answers with the error types and messages that AWS JSON-protocol endpoints
//! (ECS among them) send, because clients and people act on them: the AWS SDK for Java,
//! for one, takes `InvalidSignatureException` as a sign of clock skew and retries with the
//! time from the response's `Date` header.
//!
//! - Two places for the signature: the `Authorization` header, or the query string
//!   (a presigned URL: `X-Amz-Algorithm`, `X-Amz-Credential`, ...). Both at once is refused.
//! - The request time comes from `X-Amz-Date` (or the `Date` header) and must be within
//!   15 minutes of `now` either way; a presigned URL is also good for `X-Amz-Expires` seconds.
//! - `host` must be signed, and so must the header that carries the request time.
//! - The payload hash is the SHA-256 of the body. An `x-amz-content-sha256` header may
//!   instead say `UNSIGNED-PAYLOAD` (botocore does, for operations modelled without payload
//!   signing); any other value must equal the body's hash. A presigned URL may be signed
//!   over the body's hash or over `UNSIGNED-PAYLOAD`.
//! - The canonical path is normalized (dot segments and empty segments removed) and then
//!   URI-encoded once more, as for every service but S3; a `+` in the query is a space.
//!
//! # Limitations
//!
//! - Only `AWS4-HMAC-SHA256`: no SigV4a, no SigV2, no S3-style chunked payload signing.
//! - The session token is reported in [`Caller`], not checked here: tying a token to its
//!   access key is the credential store's job (`KeyRing::check_session`), and [`verify`]
//!   only sees the secret.
//! - When a presigned URL or an `UNSIGNED-PAYLOAD` header is used, the body is not covered
//!   by the signature; that is the signer's choice, as on AWS.

use std::time::SystemTime;

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

mod canonical;
mod params;

#[cfg(test)]
mod botocore_tests;
#[cfg(test)]
mod tests;

use params::{RequestTime, SignedParams, ALGORITHM};

/// How far the request time may be from the server's clock, either way (AWS's rule).
const MAX_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(15);
/// The payload hash a signer uses when it does not sign the body.
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// An incoming HTTP request, as received: nothing decoded or normalized yet, because the
/// signature covers the bytes the client sent.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// The raw path, still percent-encoded, e.g. `/` or `/a%20b`.
    pub path: &'a str,
    /// The raw query string, without the `?`; empty when there is none.
    pub query: &'a str,
    /// All request headers, `host` included.
    pub headers: &'a HeaderMap,
    /// The whole body.
    pub body: &'a [u8],
}

/// Who signed a request that [`verify`] accepted, and for which region and service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The access key id from the credential scope.
    pub access_key_id: String,
    /// The region from the credential scope, e.g. `us-east-1`.
    pub region: String,
    /// The service from the credential scope, e.g. `ecs`.
    pub service: String,
    /// `X-Amz-Security-Token` (header, else query), present for temporary credentials.
    pub session_token: Option<String>,
}

/// Why a request failed authentication.
///
/// `Display` is the message AWS sends for the same failure and [`AuthError::error_type`]
/// the `__type`, so the HTTP edge can answer exactly as an ECS endpoint would.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Neither an `Authorization` header nor an `X-Amz-Algorithm` query parameter.
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,
    /// The signature information is incomplete or malformed; the message says what is
    /// wrong, in AWS's words where AWS has words for it.
    #[error("{0}")]
    IncompleteSignature(String),
    /// The access key id is unknown.
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
    /// The signature is not the one the secret produces for this request.
    #[error(
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method. \
         Consult the service documentation for details."
    )]
    SignatureMismatch,
    /// The request time is older than the allowed window (15 minutes, or the
    /// presigned URL's `X-Amz-Expires`).
    #[error("Signature expired: {signed} is now earlier than {earliest} ({now} - {window}.)")]
    SignatureExpired {
        /// The request time, `YYYYMMDDTHHMMSSZ` like every time here.
        signed: String,
        /// The oldest request time still accepted.
        earliest: String,
        /// The server's clock.
        now: String,
        /// The window, as AWS words it: `15 min` or `900 sec`.
        window: String,
    },
    /// The request time is more than 15 minutes ahead of the server's clock.
    #[error("Signature not yet current: {signed} is still later than {latest} ({now} + 15 min.)")]
    SignatureNotYetCurrent {
        /// The request time.
        signed: String,
        /// The newest request time accepted.
        latest: String,
        /// The server's clock.
        now: String,
    },
    /// The date in the credential scope is not the date of the request time.
    #[error(
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
         from HTTP: '{scope_date}' != '{request_date}', from '{request_time}'."
    )]
    ScopeDateMismatch {
        /// The date in the credential scope.
        scope_date: String,
        /// The date part of the request time.
        request_date: String,
        /// The request time.
        request_time: String,
    },
    /// `x-amz-content-sha256` is neither `UNSIGNED-PAYLOAD` nor the body's SHA-256.
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    ContentHashMismatch,
}

impl AuthError {
    /// The AWS error type (the JSON protocol's `__type`) for this failure.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::IncompleteSignature(_) => "IncompleteSignatureException",
            Self::UnrecognizedClient => "UnrecognizedClientException",
            Self::SignatureMismatch
            | Self::SignatureExpired { .. }
            | Self::SignatureNotYetCurrent { .. }
            | Self::ScopeDateMismatch { .. }
            | Self::ContentHashMismatch => "InvalidSignatureException",
        }
    }
}

/// Checks that `req` carries a valid SigV4 signature made with the secret that
/// `secret_for` returns for its access key id, at a time close enough to `now`.
///
/// The checks run cheapest first, and the secret is looked up only for a request whose
/// signature information is complete and current.
pub fn verify(
    req: &Request<'_>,
    now: DateTime<Utc>,
    secret_for: impl Fn(&str) -> Option<String>,
) -> Result<Caller, AuthError> {
    let signed = params::parse(req)?;
    check_time(&signed, now)?;
    let payload_hashes = payload_hashes(req, signed.presigned)?;
    let secret = secret_for(&signed.scope.access_key_id).ok_or(AuthError::UnrecognizedClient)?;
    check_signature(req, &signed, &secret, &payload_hashes)?;
    Ok(Caller {
        access_key_id: signed.scope.access_key_id,
        region: signed.scope.region,
        service: signed.scope.service,
        session_token: signed.session_token,
    })
}

/// Refuses a request time outside the accepted window around `now`.
fn check_time(signed: &SignedParams, now: DateTime<Utc>) -> Result<(), AuthError> {
    let at = signed.time.at;
    if at > now + MAX_SKEW {
        return Err(AuthError::SignatureNotYetCurrent {
            signed: signed.time.iso.clone(),
            latest: RequestTime::format(now + MAX_SKEW),
            now: RequestTime::format(now),
        });
    }
    let (window, label) = match signed.expires {
        Some(secs) => (chrono::TimeDelta::seconds(secs.into()), format!("{secs} sec")),
        None => (MAX_SKEW, "15 min".to_owned()),
    };
    if at < now - window {
        return Err(AuthError::SignatureExpired {
            signed: signed.time.iso.clone(),
            earliest: RequestTime::format(now - window),
            now: RequestTime::format(now),
            window: label,
        });
    }
    Ok(())
}

/// The payload hashes the client may have signed with, most likely first.
fn payload_hashes(req: &Request<'_>, presigned: bool) -> Result<Vec<String>, AuthError> {
    let body_hash = hex::encode(Sha256::digest(req.body));
    if presigned {
        return Ok(vec![body_hash, UNSIGNED_PAYLOAD.to_owned()]);
    }
    let Some(declared) = req.headers.get("x-amz-content-sha256") else {
        return Ok(vec![body_hash]);
    };
    let declared = declared.to_str().unwrap_or_default();
    if declared == UNSIGNED_PAYLOAD || declared.eq_ignore_ascii_case(&body_hash) {
        Ok(vec![declared.to_owned()])
    } else {
        Err(AuthError::ContentHashMismatch)
    }
}

/// Recomputes the signature for each possible payload hash and accepts if one matches.
fn check_signature(
    req: &Request<'_>,
    signed: &SignedParams,
    secret: &str,
    payload_hashes: &[String],
) -> Result<(), AuthError> {
    let scope = &signed.scope;
    let key = aws_sigv4::sign::v4::generate_signing_key(
        secret,
        SystemTime::from(signed.time.at),
        &scope.region,
        &scope.service,
    );
    let unhashed = canonical::request_without_payload(req, &signed.signed_headers, signed.presigned);
    let mut strings_to_sign = Vec::with_capacity(payload_hashes.len());
    for payload_hash in payload_hashes {
        let mut creq = unhashed.clone();
        creq.extend_from_slice(payload_hash.as_bytes());
        let string_to_sign = format!(
            "{ALGORITHM}\n{}\n{}\n{}",
            signed.time.iso,
            scope.to_scope_string(),
            hex::encode(Sha256::digest(&creq)),
        );
        let expected = aws_sigv4::sign::v4::calculate_signature(&key, string_to_sign.as_bytes());
        if constant_time_eq(expected.as_bytes(), signed.signature.as_bytes()) {
            return Ok(());
        }
        strings_to_sign.push(string_to_sign);
    }
    // What the client should have signed: enough to debug a client, and no secret.
    tracing::debug!(
        access_key_id = %scope.access_key_id,
        ?strings_to_sign,
        "SigV4 signature mismatch"
    );
    Err(AuthError::SignatureMismatch)
}

/// Compares two byte strings without an early exit, so the time taken does not tell an
/// attacker how many leading characters of a forged signature were right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}
