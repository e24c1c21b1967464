//! Image references, normalized the way Docker does (`busybox` is
//! `docker.io/library/busybox:latest`), and which registries are spoken to over plain HTTP.

use std::net::IpAddr;
use std::sync::OnceLock;

use oci_client::Reference;
use regex::{Regex, RegexBuilder};

use super::ImageError;

/// Docker's reference grammar (distribution/reference): `[domain/]path[:tag][@digest]`,
/// with ASCII character classes, as Go's regexp has them. oci-spec's own parser compiles
/// the same grammar with Unicode `\w` in the tag; building that NFA takes 16 MB, which the
/// allocator keeps, and was most of an idle agent's memory.
const GRAMMAR: &str = r"^((?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+)?(?::[0-9]+)?/)?[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?)(?::([\w][\w.-]{0,127}))?(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}))?$";

/// The longest repository name registries accept.
const NAME_MAX: usize = 255;

fn grammar() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| RegexBuilder::new(GRAMMAR).unicode(false).build().expect("the reference grammar compiles"))
}

#[derive(Debug, Clone)]
pub(crate) struct ImageRef {
    pub parsed: Reference,
}

impl ImageRef {
    pub(crate) fn parse(reference: &str) -> Result<Self, ImageError> {
        let invalid =
            |reason: &str| ImageError::InvalidReference { reference: reference.to_string(), reason: reason.into() };
        let trimmed = reference.trim();
        if trimmed.is_empty() {
            return Err(invalid("repository name must have at least one component"));
        }
        let caps = grammar().captures(trimmed).ok_or_else(|| invalid("invalid reference format"))?;
        let (registry, repository) = split_domain(&caps[1]);
        if repository.len() > NAME_MAX {
            return Err(invalid("repository name must not be more than 255 characters"));
        }
        let tag = caps.get(2).map(|m| m.as_str().to_string());
        let parsed = match caps.get(3).map(|m| m.as_str().to_string()) {
            Some(digest) => {
                check_digest(&digest).map_err(invalid)?;
                match tag {
                    Some(tag) => Reference::with_tag_and_digest(registry, repository, tag, digest),
                    None => Reference::with_digest(registry, repository, digest),
                }
            }
            None => Reference::with_tag(registry, repository, tag.unwrap_or_else(|| "latest".into())),
        };
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

/// Docker's normalization: the first path component is a registry only when it has a `.`
/// or a `:` or is `localhost`; Docker Hub is `docker.io`, and its one-component names are
/// under `library/`.
fn split_domain(name: &str) -> (String, String) {
    let (domain, rest) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first, rest),
        _ => ("docker.io", name),
    };
    let domain = if domain == "index.docker.io" { "docker.io" } else { domain };
    if domain == "docker.io" && !rest.contains('/') {
        return (domain.into(), format!("library/{rest}"));
    }
    (domain.into(), rest.into())
}

/// A digest the registries accept: a known algorithm with a hex part of its length.
fn check_digest(digest: &str) -> Result<(), &'static str> {
    let (algorithm, hex) = digest.split_once(':').ok_or("invalid checksum digest format")?;
    let len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err("unsupported digest algorithm"),
    };
    if hex.len() == len {
        Ok(())
    } else {
        Err("invalid checksum digest length")
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
