//! Talking to registries with `oci-client`: manifests (resolving indexes to this host's
//! platform), verified blob downloads, pushes, and turning failures into messages that say
//! why (unauthorized, not found, connection refused).

use std::path::PathBuf;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth as OciAuth;
use oci_client::Client;

use super::error::chain;
use super::manifest::{self, Descriptor, Doc};
use super::reference::{is_plain_http, ImageRef};
use super::{ImageError, PullFailure, RegistryAuth};

pub(crate) fn client(registry: &str, insecure: &[String], connect_timeout: Duration) -> Client {
    let protocol = if is_plain_http(registry, insecure) {
        ClientProtocol::HttpsExcept(vec![registry.to_string()])
    } else {
        ClientProtocol::Https
    };
    Client::new(ClientConfig {
        protocol,
        connect_timeout: Some(connect_timeout),
        read_timeout: Some(Duration::from_secs(120)),
        ..Default::default()
    })
}

pub(crate) fn oci_auth(auth: Option<&RegistryAuth>) -> OciAuth {
    match auth {
        Some(a) => OciAuth::Basic(a.username.clone(), a.password.clone()),
        None => OciAuth::Anonymous,
    }
}

fn status_failure(code: u16) -> PullFailure {
    match code {
        401 | 403 => PullFailure::Unauthorized,
        404 => PullFailure::NotFound,
        _ => PullFailure::Registry,
    }
}

pub(crate) fn map_error(operation: &'static str, r: &ImageRef, authed: bool, e: OciDistributionError) -> ImageError {
    let registry = r.registry().to_string();
    let (failure, detail) = match &e {
        OciDistributionError::AuthenticationFailure(reason) => (
            PullFailure::Unauthorized,
            format!(
                "registry {registry} rejected the credentials: authentication at its token service failed: {}",
                brief(reason)
            ),
        ),
        OciDistributionError::UnauthorizedError { .. } => (PullFailure::Unauthorized, refused(operation, r, authed)),
        OciDistributionError::RegistryError { envelope, .. } => {
            let failure = envelope
                .errors
                .iter()
                .map(|err| match err.code {
                    OciErrorCode::ManifestUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::NotFound
                    | OciErrorCode::BlobUnknown
                    | OciErrorCode::ManifestBlobUnknown => PullFailure::NotFound,
                    OciErrorCode::Unauthorized | OciErrorCode::Denied => PullFailure::Unauthorized,
                    _ => PullFailure::Registry,
                })
                .next()
                .unwrap_or(PullFailure::Registry);
            let messages: Vec<String> =
                envelope.errors.iter().map(|err| format!("{:?}: {}", err.code, err.message)).collect();
            (failure, format!("registry {registry} answered {}", messages.join("; ")))
        }
        OciDistributionError::ServerError { code: code @ (401 | 403), message, .. } => {
            (PullFailure::Unauthorized, format!("{} (HTTP {code}: {})", refused(operation, r, authed), brief(message)))
        }
        OciDistributionError::ServerError { code, message, .. } => {
            (status_failure(*code), format!("registry {registry} answered HTTP {code}: {}", message.trim()))
        }
        OciDistributionError::ImageManifestNotFoundError(m) => (PullFailure::NotFound, m.clone()),
        OciDistributionError::DigestError(d) => (PullFailure::Verification, d.to_string()),
        OciDistributionError::UnsupportedSchemaVersionError(_)
        | OciDistributionError::UnsupportedMediaTypeError(_)
        | OciDistributionError::ManifestParsingError(_)
        | OciDistributionError::VersionedParsingError(_) => (PullFailure::Unsupported, e.to_string()),
        OciDistributionError::RequestError(req) => {
            if let Some(status) = req.status() {
                (status_failure(status.as_u16()), format!("registry {registry} answered HTTP {status}"))
            } else if req.is_connect() || req.is_timeout() {
                let text = chain(req);
                (PullFailure::Unreachable, format!("cannot connect to {registry}: {}", lower_os_error(&text)))
            } else {
                (PullFailure::Registry, chain(req))
            }
        }
        other => (PullFailure::Registry, chain(other)),
    };
    ImageError::Registry { operation, reference: r.parsed.whole(), failure, detail }
}

/// Why a 401 or 403 happened, as far as the client can tell: a token registry answers 401
/// both to wrong basic credentials and to a token that does not grant the operation.
fn refused(operation: &str, r: &ImageRef, authed: bool) -> String {
    let registry = r.registry();
    if authed {
        format!(
            "registry {registry} rejected the credentials (authentication failed, or they do not grant {operation} on {})",
            r.parsed.repository()
        )
    } else {
        format!("registry {registry} requires authentication and no credentials were given")
    }
}

/// A token service's answer, trimmed and cut to one short line for a stop reason.
fn brief(reason: &str) -> String {
    let line = reason.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line,
    }
}

/// Asks a bearer-token registry's token service for a token for `op` on `r`'s repository
/// before the first request, so that refused credentials fail with the service's reason
/// (oci-client otherwise drops a failed token request and goes on anonymously, and the
/// registry's 401 no longer says why). The token is cached in `client` for the requests that
/// follow; a basic-auth or anonymous registry costs one `GET /v2/`.
pub(crate) async fn authenticate(
    client: &Client,
    r: &ImageRef,
    auth: &OciAuth,
    op: oci_client::RegistryOperation,
) -> Result<(), OciDistributionError> {
    client.auth(&r.parsed, auth, op).await.map(|_| ())
}

/// "Connection refused (os error 111)" reads as "connection refused (os error 111)" so the
/// words are the same whatever the OS capitalizes.
fn lower_os_error(text: &str) -> String {
    text.replace("Connection refused", "connection refused").replace("Connection reset", "connection reset")
}

/// The image manifest for this host: the manifest itself, or the platform's entry of an
/// index. Returns the manifest bytes, its digest and its parsed config and layers.
pub(crate) async fn fetch_manifest(
    client: &Client,
    r: &ImageRef,
    auth: &OciAuth,
    authed: bool,
) -> Result<(Vec<u8>, String, Descriptor, Vec<Descriptor>), ImageError> {
    let map = |e| map_error("pull", r, authed, e);
    if authed {
        authenticate(client, r, auth, oci_client::RegistryOperation::Pull).await.map_err(map)?;
    }
    let (bytes, digest) = client.pull_manifest_raw(&r.parsed, auth, manifest::ACCEPTED).await.map_err(map)?;
    let what = format!("manifest of {}", r.parsed.whole());
    let unsupported = |e: ImageError| ImageError::Registry {
        operation: "pull",
        reference: r.parsed.whole(),
        failure: PullFailure::Unsupported,
        detail: e.to_string(),
    };
    match manifest::parse(&bytes, &what).map_err(unsupported)? {
        Doc::Image { config, layers } => Ok((bytes, digest, config, layers)),
        Doc::Index { manifests } => {
            let entry = manifest::select_platform(&manifests, &what).map_err(unsupported)?;
            let by_digest = r.parsed.clone_with_digest(entry.digest.clone());
            let (bytes, digest) = client.pull_manifest_raw(&by_digest, auth, manifest::ACCEPTED).await.map_err(map)?;
            match manifest::parse(&bytes, &what).map_err(unsupported)? {
                Doc::Image { config, layers } => Ok((bytes, digest, config, layers)),
                Doc::Index { .. } => {
                    Err(unsupported(ImageError::document(what, "an index entry points at another index")))
                }
            }
        }
    }
}

/// Downloads one blob into `tmp` (oci-client checks the digest, and the registry's
/// `Docker-Content-Digest`, while streaming; a mismatch is an error).
pub(crate) async fn fetch_blob(
    client: &Client,
    r: &ImageRef,
    desc: &Descriptor,
    tmp: &PathBuf,
    authed: bool,
) -> Result<(), ImageError> {
    let file = tokio::fs::File::create(tmp).await.map_err(ImageError::io("creating", tmp.clone()))?;
    let mut writer = tokio::io::BufWriter::new(file);
    let result = client.pull_blob(&r.parsed, desc.digest.as_str(), &mut writer).await;
    let flushed = tokio::io::AsyncWriteExt::flush(&mut writer).await;
    match result {
        Ok(()) => flushed.map_err(ImageError::io("writing", tmp.clone())),
        Err(e) => {
            let _ = tokio::fs::remove_file(tmp).await;
            Err(map_error("pull", r, authed, e))
        }
    }
}

/// Pushes blobs (config and layers, each `(digest, bytes)`) and then the manifest.
pub(crate) async fn push(
    client: &Client,
    r: &ImageRef,
    auth: &OciAuth,
    authed: bool,
    blobs: &[(&str, &[u8])],
    manifest: &[u8],
    manifest_media_type: &str,
) -> Result<(), ImageError> {
    let map = |e| map_error("push", r, authed, e);
    // Up front, so that a bearer-token registry grants the push scope.
    authenticate(client, r, auth, oci_client::RegistryOperation::Push).await.map_err(map)?;
    for (digest, data) in blobs {
        client.push_blob(&r.parsed, data, digest).await.map_err(map)?;
    }
    let content_type =
        http::HeaderValue::from_str(manifest_media_type).map_err(|e| ImageError::document("manifest media type", e))?;
    client.push_manifest_raw(&r.parsed, manifest.to_vec(), content_type).await.map_err(map)?;
    Ok(())
}
