//! Reading the signature information out of a request: the `Authorization` header or the
//! presigned query parameters, the credential scope and the request time.

use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use sha2::{Digest, Sha256};

use super::{canonical, AuthError, Request};

/// The one signing algorithm accepted.
pub(super) const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The last element of every SigV4 credential scope.
const TERMINATOR: &str = "aws4_request";
/// `X-Amz-Date`'s format, ISO 8601 "basic": `20260101T000000Z`.
const AMZ_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";
/// The longest validity a presigned URL may ask for: one week, AWS's limit.
const MAX_EXPIRES_SECS: u32 = 604_800;

/// Everything the signature was made over, apart from the request itself.
#[derive(Debug)]
pub(super) struct SignedParams {
    pub scope: Scope,
    /// `SignedHeaders` exactly as the client sent them, e.g. `host;x-amz-date`.
    pub signed_headers: String,
    pub signature: String,
    pub time: RequestTime,
    /// Presigned only: `X-Amz-Expires`, in seconds.
    pub expires: Option<u32>,
    pub session_token: Option<String>,
    /// Whether the signature came in the query string rather than a header.
    pub presigned: bool,
}

/// The credential scope `AKID/YYYYMMDD/REGION/SERVICE/aws4_request`.
#[derive(Debug)]
pub(super) struct Scope {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
}

impl Scope {
    /// The scope as it appears in the string to sign (without the access key id).
    pub fn to_scope_string(&self) -> String {
        format!("{}/{}/{}/{TERMINATOR}", self.date, self.region, self.service)
    }
}

/// The time the client says it signed at.
#[derive(Debug)]
pub(super) struct RequestTime {
    /// The time in `X-Amz-Date` form, as it goes into the string to sign.
    pub iso: String,
    pub at: DateTime<Utc>,
}

impl RequestTime {
    /// Formats a time the way `X-Amz-Date` and AWS's error messages write it.
    pub fn format(at: DateTime<Utc>) -> String {
        at.format(AMZ_DATE_FORMAT).to_string()
    }

    /// Parses `X-Amz-Date`; AWS's message on failure.
    fn from_amz_date(value: &str) -> Result<Self, AuthError> {
        // The round trip refuses what chrono's parser tolerates, e.g. padding spaces.
        let at = NaiveDateTime::parse_from_str(value, AMZ_DATE_FORMAT)
            .ok()
            .map(|t| t.and_utc())
            .filter(|at| Self::format(*at) == value)
            .ok_or_else(|| {
                AuthError::IncompleteSignature(format!(
                    "Date must be in ISO-8601 'basic format'. Got '{value}'. \
                     See http://en.wikipedia.org/wiki/ISO_8601"
                ))
            })?;
        Ok(Self { iso: Self::format(at), at })
    }

    /// Parses an HTTP `Date` header (RFC 1123), which the spec allows instead of
    /// `X-Amz-Date`; the string to sign then carries it in `X-Amz-Date` form.
    fn from_http_date(value: &str) -> Result<Self, AuthError> {
        let at = DateTime::parse_from_rfc2822(value)
            .map_err(|_| AuthError::IncompleteSignature(format!("Date must be in RFC 1123 format. Got '{value}'.")))?
            .with_timezone(&Utc);
        Ok(Self { iso: Self::format(at), at })
    }
}

/// Reads the signature information from the header or the query string, whichever the
/// client used.
pub(super) fn parse(req: &Request<'_>) -> Result<SignedParams, AuthError> {
    let query = canonical::parse_query(req.query);
    let presigned = query.iter().any(|(k, _)| k == b"X-Amz-Algorithm");
    match (req.headers.get("authorization"), presigned) {
        (None, false) => Err(AuthError::MissingAuthenticationToken),
        (Some(_), true) => Err(AuthError::IncompleteSignature(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, \
             Signature query string parameter or the Authorization header should be specified"
                .to_owned(),
        )),
        (Some(value), false) => from_header(req, &String::from_utf8_lossy(value.as_bytes())),
        (None, true) => from_query(req, &query),
    }
}

/// The `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`
/// form.
fn from_header(req: &Request<'_>, authorization: &str) -> Result<SignedParams, AuthError> {
    let fields = header_fields(authorization)?;
    let amz_date = header_str(req, "x-amz-date");
    let http_date = header_str(req, "date");
    let mut missing = Vec::new();
    for (field, name) in [
        (&fields.credential, "Credential"),
        (&fields.signature, "Signature"),
        (&fields.signed_headers, "SignedHeaders"),
    ] {
        if field.is_none() {
            missing.push(format!("Authorization header requires '{name}' parameter."));
        }
    }
    if amz_date.is_none() && http_date.is_none() {
        missing.push("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".to_owned());
    }
    let (Some(credential), Some(signature), Some(signed_headers), true) =
        (fields.credential, fields.signature, fields.signed_headers, missing.is_empty())
    else {
        missing.push(format!("Authorization={authorization}"));
        return Err(AuthError::IncompleteSignature(missing.join(" ")));
    };
    let (time, date_header) = match amz_date {
        Some(value) => (RequestTime::from_amz_date(&value)?, "X-Amz-Date"),
        None => (RequestTime::from_http_date(&http_date.unwrap_or_default())?, "Date"),
    };
    check_signed_headers(&signed_headers, Some(date_header))?;
    let scope = parse_scope(&credential, &time)?;
    Ok(SignedParams {
        scope,
        signed_headers,
        signature,
        time,
        expires: None,
        session_token: header_str(req, "x-amz-security-token").or_else(|| query_str(req, "X-Amz-Security-Token")),
        presigned: false,
    })
}

/// The `Credential`, `SignedHeaders` and `Signature` parameters of an `Authorization`
/// header; all `None` when the algorithm is not SigV4.
#[derive(Debug, Default)]
struct HeaderFields {
    credential: Option<String>,
    signed_headers: Option<String>,
    signature: Option<String>,
}

/// Splits `ALGORITHM k=v, k=v, ...`. A part without `=` is refused the way AWS does,
/// naming the header by its hash rather than echoing it.
fn header_fields(authorization: &str) -> Result<HeaderFields, AuthError> {
    let trimmed = authorization.trim();
    let (algorithm, rest) = trimmed.split_once(|c: char| c.is_ascii_whitespace()).unwrap_or((trimmed, ""));
    let mut fields = HeaderFields::default();
    if algorithm != ALGORITHM {
        return Ok(fields);
    }
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = part.split_once('=') else {
            let hash = Sha256::digest(authorization.as_bytes());
            return Err(AuthError::IncompleteSignature(format!(
                "Invalid key=value pair (missing equal-sign) in Authorization header \
                 (hashed with SHA-256 and encoded with Base64): '{}'.",
                base64::engine::general_purpose::STANDARD.encode(hash)
            )));
        };
        let slot = match key.trim() {
            "Credential" => &mut fields.credential,
            "SignedHeaders" => &mut fields.signed_headers,
            "Signature" => &mut fields.signature,
            _ => continue,
        };
        slot.get_or_insert_with(|| value.trim().to_owned());
    }
    Ok(fields)
}

/// The presigned-URL form: `X-Amz-Algorithm`, `X-Amz-Credential`, ... in the query.
fn from_query(req: &Request<'_>, query: &[(Vec<u8>, Vec<u8>)]) -> Result<SignedParams, AuthError> {
    let get = |name: &str| {
        query.iter().find(|(k, _)| k == name.as_bytes()).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    if get("X-Amz-Algorithm").as_deref() != Some(ALGORITHM) {
        return Err(AuthError::IncompleteSignature(format!("X-Amz-Algorithm only supports \"{ALGORITHM}\"")));
    }
    let (Some(credential), Some(signature), Some(date), Some(signed_headers), Some(expires)) = (
        get("X-Amz-Credential"),
        get("X-Amz-Signature"),
        get("X-Amz-Date"),
        get("X-Amz-SignedHeaders"),
        get("X-Amz-Expires"),
    ) else {
        return Err(AuthError::IncompleteSignature(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, \
             X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, \
             and X-Amz-Expires parameters."
                .to_owned(),
        ));
    };
    let expires = parse_expires(&expires)?;
    let time = RequestTime::from_amz_date(&date)?;
    check_signed_headers(&signed_headers, None)?;
    let scope = parse_scope(&credential, &time)?;
    Ok(SignedParams {
        scope,
        signed_headers,
        signature,
        time,
        expires: Some(expires),
        session_token: get("X-Amz-Security-Token").or_else(|| header_str(req, "x-amz-security-token")),
        presigned: true,
    })
}

/// `X-Amz-Expires`: whole seconds, at most a week.
fn parse_expires(value: &str) -> Result<u32, AuthError> {
    let secs: u32 =
        value.parse().map_err(|_| AuthError::IncompleteSignature("X-Amz-Expires should be a number".to_owned()))?;
    if secs > MAX_EXPIRES_SECS {
        return Err(AuthError::IncompleteSignature(format!(
            "X-Amz-Expires must be less than a week (in seconds) that is {MAX_EXPIRES_SECS}"
        )));
    }
    Ok(secs)
}

/// Requires `host` among the signed headers (AWS does: it binds the signature to the
/// endpoint), and the header that carries the request time, when it is a header.
fn check_signed_headers(signed_headers: &str, date_header: Option<&str>) -> Result<(), AuthError> {
    let signed = |name: &str| signed_headers.split(';').any(|h| h.trim().eq_ignore_ascii_case(name));
    if !signed("host") {
        return Err(AuthError::IncompleteSignature(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".to_owned(),
        ));
    }
    match date_header {
        Some(name) if !signed(name) => {
            Err(AuthError::IncompleteSignature(format!("'{name}' must be a 'SignedHeader' in the AWS Authorization.")))
        }
        _ => Ok(()),
    }
}

/// Parses `AKID/YYYYMMDD/REGION/SERVICE/aws4_request`, whose date must be the request's.
fn parse_scope(credential: &str, time: &RequestTime) -> Result<Scope, AuthError> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts[..] else {
        return Err(AuthError::IncompleteSignature(format!(
            "Credential should be scoped as \
             '<access key id>/<YYYYMMDD>/<region>/<service>/{TERMINATOR}', not '{credential}'."
        )));
    };
    if terminator != TERMINATOR {
        return Err(AuthError::IncompleteSignature(format!(
            "Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{terminator}'."
        )));
    }
    for (value, what) in [(access_key_id, "access key id"), (region, "region"), (service, "service")] {
        if value.is_empty() {
            return Err(AuthError::IncompleteSignature(format!(
                "Credential should be scoped to a valid {what}, not ''."
            )));
        }
    }
    let request_date = time.iso.get(..8).unwrap_or_default();
    if date != request_date {
        return Err(AuthError::ScopeDateMismatch {
            scope_date: date.to_owned(),
            request_date: request_date.to_owned(),
            request_time: time.iso.clone(),
        });
    }
    Ok(Scope {
        access_key_id: access_key_id.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
    })
}

/// A header's value as text (lossy: the signature check sees the raw bytes anyway).
fn header_str(req: &Request<'_>, name: &str) -> Option<String> {
    req.headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
}

/// A decoded query parameter's value.
fn query_str(req: &Request<'_>, name: &str) -> Option<String> {
    canonical::parse_query(req.query)
        .into_iter()
        .find(|(k, _)| k == name.as_bytes())
        .map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
}
