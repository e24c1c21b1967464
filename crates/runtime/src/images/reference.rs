//! Image references, normalized the way Docker does (`busybox` is
//! `docker.io/library/busybox:latest`), and which registries are spoken to over plain HTTP.

use std::net::IpAddr;

use oci_client::Reference;

use super::ImageError;

#[derive(Debug, Clone)]
pub(crate) struct ImageRef {
    pub parsed: Reference,
}

impl ImageRef {
    pub(crate) fn parse(reference: &str) -> Result<Self, ImageError> {
        let trimmed = reference.trim();
        let parsed: Reference = trimmed.parse().map_err(|e: oci_client::ParseError| ImageError::InvalidReference {
            reference: reference.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self { parsed })
    }

    /// The key the index files this reference under: `registry/repo:tag` or, when the
    /// reference has a digest, `registry/repo@digest` (the digest decides; a tag beside it
    /// is informational, as in Docker).
    pub(crate) fn key(&self) -> String {
        match self.parsed.digest() {
            Some(d) => self.digest_key(d),
            None => self.parsed.whole(),
        }
    }

    pub(crate) fn digest_key(&self, digest: &str) -> String {
        format!("{}/{}@{digest}", self.parsed.registry(), self.parsed.repository())
    }

    pub(crate) fn digest(&self) -> Option<&str> {
        self.parsed.digest()
    }

    /// The registry host to connect to (`index.docker.io` for Docker Hub).
    pub(crate) fn registry(&self) -> &str {
        self.parsed.resolve_registry()
    }
}

/// The host part of `host[:port]` or `[v6]:port`.
pub(crate) fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.rsplit_once(':').map(|(h, _)| h).unwrap_or(registry)
}

/// Plain HTTP for loopback registries (127.0.0.0/8, `localhost`, `[::1]`) and for
/// registries listed as insecure (as `host:port` or `host`).
pub(crate) fn is_plain_http(registry: &str, insecure: &[String]) -> bool {
    let host = host_of(registry);
    let loopback = host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    loopback || insecure.iter().any(|i| i == registry || i == host)
}
