//! The one error type of the image subsystem.

use std::fmt;
use std::path::PathBuf;

/// Why a pull failed, in the words the task engine puts into a stopped reason
/// (`CannotPullContainerError: ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullFailure {
    /// The registry refused the credentials (or their absence): HTTP 401/403.
    Unauthorized,
    /// The repository, tag, digest or a blob does not exist.
    NotFound,
    /// The registry could not be reached (connection refused, DNS, TLS, timeout).
    Unreachable,
    /// Content did not match its digest.
    Verification,
    /// The registry served something berth cannot run (schema 1, foreign platform, zstd layers).
    Unsupported,
    /// Any other answer of the registry.
    Registry,
}

impl fmt::Display for PullFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not found",
            Self::Unreachable => "registry unreachable",
            Self::Verification => "content verification failed",
            Self::Unsupported => "unsupported image",
            Self::Registry => "registry error",
        })
    }
}

/// Errors of [`super::ImageStore`]. Each message names what failed and with which value.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The reference does not parse as `[registry/]repository[:tag][@digest]`.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    /// Pulling from (or pushing to) a registry failed.
    #[error("{operation} {reference}: {failure}: {detail}")]
    Registry { operation: &'static str, reference: String, failure: PullFailure, detail: String },
    /// A file-system operation on the store failed. (The I/O error is part of the message,
    /// which is what reaches a task's stopped reason, so it is not repeated as a source.)
    #[error("{action} {}: {cause}", path.display())]
    Io { action: &'static str, path: PathBuf, cause: std::io::Error },
    /// A layer could not be applied.
    #[error("layer {digest}: {reason}")]
    Layer { digest: String, reason: String },
    /// Content did not hash to the digest that names it.
    #[error("{what} failed verification: expected {expected}, got {actual}")]
    DigestMismatch { what: String, expected: String, actual: String },
    /// A manifest, index or config document is malformed or unsupported.
    #[error("{what}: {reason}")]
    Document { what: String, reason: String },
    /// An archive given to `load_archive` is not a `docker save` tarball nor an OCI layout.
    #[error("archive {}: {reason}", path.display())]
    Archive { path: PathBuf, reason: String },
    /// Mounting or unmounting a rootfs failed.
    #[error("{action} {}: {reason}", path.display())]
    Mount { action: &'static str, path: PathBuf, reason: String },
    /// The image is not in the store (PullPolicy never allowed a pull, or a layer is gone).
    #[error("image {reference} is not in the image store: {reason}")]
    NotCached { reference: String, reason: String },
}

impl ImageError {
    /// The [`PullFailure`] of a registry error, for callers that branch on it.
    pub fn pull_failure(&self) -> Option<PullFailure> {
        match self {
            Self::Registry { failure, .. } => Some(*failure),
            _ => None,
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |cause| Self::Io { action, path, cause }
    }

    pub(crate) fn document(what: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self::Document { what: what.into(), reason: reason.to_string() }
    }
}

/// An error and its sources as one line ("a: b: c"), skipping sources whose text the line
/// already holds.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}
