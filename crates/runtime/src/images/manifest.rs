//! Manifests and indexes (Docker schema 2 and OCI), read the same way whether they came
//! from a registry or an OCI layout.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::config::host_architecture;
use super::ImageError;

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub(crate) const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const ACCEPTED: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST];

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Either an image manifest (config + layers) or an index (manifests).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDoc {
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

#[derive(Debug, Clone)]
pub(crate) enum Doc {
    Image { config: Descriptor, layers: Vec<Descriptor> },
    Index { manifests: Vec<Descriptor> },
}

pub(crate) fn parse(bytes: &[u8], what: &str) -> Result<Doc, ImageError> {
    let raw: RawDoc = serde_json::from_slice(bytes).map_err(|e| ImageError::document(what, e))?;
    if raw.schema_version != 2 {
        return Err(ImageError::document(
            what,
            format!("schema version {} is not supported (only Docker schema 2 and OCI)", raw.schema_version),
        ));
    }
    if let Some(manifests) = raw.manifests {
        return Ok(Doc::Index { manifests });
    }
    match raw.config {
        Some(config) => Ok(Doc::Image { config, layers: raw.layers }),
        None => Err(ImageError::document(
            what,
            format!("neither an image manifest nor an index (mediaType {:?})", raw.media_type.unwrap_or_default()),
        )),
    }
}

/// The entry of an index for linux on this host's architecture (an entry without a
/// platform is taken when it is the only one).
pub(crate) fn select_platform<'a>(manifests: &'a [Descriptor], what: &str) -> Result<&'a Descriptor, ImageError> {
    let arch = host_architecture();
    let matching = |d: &&Descriptor| d.platform.as_ref().is_some_and(|p| p.os == "linux" && p.architecture == arch);
    if let Some(d) = manifests.iter().find(matching) {
        return Ok(d);
    }
    if let [only] = manifests {
        if only.platform.is_none() {
            return Ok(only);
        }
    }
    let available: Vec<String> = manifests
        .iter()
        .map(|d| {
            d.platform.as_ref().map(|p| format!("{}/{}", p.os, p.architecture)).unwrap_or_else(|| "unknown".into())
        })
        .collect();
    Err(ImageError::document(what, format!("no linux/{arch} image in the index (it has: {})", available.join(", "))))
}

/// Layer compressions berth applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
}

/// Compression from the first bytes of a layer blob (media types lie often enough,
/// e.g. `docker save` names uncompressed layers `.tar` with Docker's gzip media type).
pub(crate) fn sniff_compression(head: &[u8], digest: &str) -> Result<Compression, ImageError> {
    match head {
        [0x1f, 0x8b, ..] => Ok(Compression::Gzip),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Err(ImageError::Layer {
            digest: digest.to_string(),
            reason: "zstd-compressed layers are not supported".into(),
        }),
        _ => Ok(Compression::None),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestOut<'a> {
    schema_version: u32,
    media_type: &'static str,
    config: &'a Descriptor,
    layers: &'a [Descriptor],
}

/// An OCI image manifest document.
pub(crate) fn oci_manifest_json(config: &Descriptor, layers: &[Descriptor]) -> Vec<u8> {
    serde_json::to_vec(&ManifestOut { schema_version: 2, media_type: OCI_MANIFEST, config, layers })
        .expect("a manifest serializes")
}
