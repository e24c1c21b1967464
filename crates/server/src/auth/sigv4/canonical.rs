//! The SigV4 canonical request, built from the request as received.
//!
//! Everything is bytes rather than `str`: a header value or a decoded query parameter need
//! not be UTF-8, and the client hashed whatever bytes it sent.

use percent_encoding::{percent_decode, percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::Request;

/// Everything but SigV4's unreserved characters `A-Za-z0-9-_.~` is percent-encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// In the path, `/` separates segments and stays as it is.
const PATH_UNRESERVED: &AsciiSet = &UNRESERVED.remove(b'/');

/// The query parameter that carries a presigned URL's signature, which it cannot sign.
const SIGNATURE_PARAM: &[u8] = b"X-Amz-Signature";

/// The canonical request up to and including the line of signed headers and its newline;
/// the caller appends the payload hash.
///
/// ```text
/// METHOD\nCANONICAL_URI\nCANONICAL_QUERY\nCANONICAL_HEADERS\n\nSIGNED_HEADERS\n
/// ```
pub(super) fn request_without_payload(req: &Request<'_>, signed_headers: &str, presigned: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(req.method.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(uri(req.path).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(query(req.query, presigned).as_bytes());
    out.push(b'\n');
    headers(req, signed_headers, &mut out);
    out.push(b'\n');
    out.extend_from_slice(signed_headers.as_bytes());
    out.push(b'\n');
    out
}

/// The canonical URI: the path with dot and empty segments removed, then each segment
/// URI-encoded once more (services other than S3 sign the already-encoded path encoded
/// again, so `%20` becomes `%2520`).
pub(super) fn uri(raw_path: &str) -> String {
    percent_encode(normalize_path(raw_path).as_bytes(), PATH_UNRESERVED).to_string()
}

/// RFC 3986 dot-segment removal plus the removal of empty segments, as the AWS SDKs do
/// before signing: `/a//b/./c/../d` becomes `/a/b/d`; a trailing slash is kept.
fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let trailing_slash = ["/", "/.", "/.."].iter().any(|end| path.ends_with(end));
    let mut normalized = format!("/{}", segments.join("/"));
    if trailing_slash && !segments.is_empty() {
        normalized.push('/');
    }
    normalized
}

/// The canonical query string: every parameter decoded, URI-encoded with the strict
/// unreserved set, `name=value` (`name=` when empty), sorted by name then value and joined
/// by `&`. A presigned URL's `X-Amz-Signature` is left out.
pub(super) fn query(raw_query: &str, presigned: bool) -> String {
    let mut pairs: Vec<(String, String)> = parse_query(raw_query)
        .into_iter()
        .filter(|(name, _)| !(presigned && name == SIGNATURE_PARAM))
        .map(|(name, value)| {
            (percent_encode(&name, UNRESERVED).to_string(), percent_encode(&value, UNRESERVED).to_string())
        })
        .collect();
    pairs.sort();
    let encoded: Vec<String> = pairs.into_iter().map(|(n, v)| format!("{n}={v}")).collect();
    encoded.join("&")
}

/// Splits and decodes a raw query string: `&`-separated, empty pieces skipped, a missing
/// `=` meaning an empty value, and `+` read as a space (form encoding, as the SDKs read it).
/// A malformed escape such as `%zz` is kept literally.
pub(super) fn parse_query(raw_query: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let decode = |s: &str| -> Vec<u8> {
        let spaced = s.replace('+', " ");
        percent_decode(spaced.as_bytes()).collect()
    };
    raw_query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            (decode(name), decode(value))
        })
        .collect()
}

/// One `name:value\n` line per signed header, in the order the client listed them: values
/// trimmed, runs of spaces collapsed, several values of one header joined by `,`.
/// A signed header that the request lacks gets an empty value, and so a mismatch.
fn headers(req: &Request<'_>, signed_headers: &str, out: &mut Vec<u8>) {
    for name in signed_headers.split(';') {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        for (i, value) in req.headers.get_all(name).iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_trimmed(value.as_bytes(), out);
        }
        out.push(b'\n');
    }
}

/// Appends `value` without leading or trailing spaces and with each run of spaces
/// collapsed to one (SigV4's "Trimall").
fn push_trimmed(value: &[u8], out: &mut Vec<u8>) {
    let words = value.split(|&b| b == b' ').filter(|w| !w.is_empty());
    for (i, word) in words.enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(word);
    }
}
