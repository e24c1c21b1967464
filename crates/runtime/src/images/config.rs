//! The image config blob: what a container of the image runs by default, and the diff ids
//! of its layers. Docker writes `null` for empty lists and `""` for unset strings; both read
//! as empty here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ImageError;

/// The parts of an image's config that decide how its containers run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// `ENTRYPOINT`, exec form.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// `CMD`, exec form.
    #[serde(default)]
    pub cmd: Vec<String>,
    /// `ENV` as `KEY=value` strings.
    #[serde(default)]
    pub env: Vec<String>,
    /// `WORKDIR`.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// `USER` (`name`, `uid`, `uid:gid`, ...).
    #[serde(default)]
    pub user: Option<String>,
    /// `EXPOSE` as `port/proto` (`8080/tcp`), sorted.
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    /// `STOPSIGNAL`, which Docker (and so ECS) sends on stop instead of SIGTERM.
    #[serde(default)]
    pub stop_signal: Option<String>,
}

/// A config blob as read: the container config, the layer diff ids and the platform.
#[derive(Debug, Clone)]
pub(crate) struct ParsedConfig {
    pub config: ImageConfig,
    pub diff_ids: Vec<String>,
    pub os: String,
    pub architecture: String,
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    config: Option<RawConfig>,
    #[serde(default)]
    rootfs: Option<RawRootfs>,
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stop_signal: Option<String>,
}

#[derive(Deserialize, Serialize)]
struct RawRootfs {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    diff_ids: Vec<String>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// `8080` reads as `8080/tcp`, as Docker does.
fn normalize_port(p: &str) -> String {
    if p.contains('/') {
        p.to_ascii_lowercase()
    } else {
        format!("{p}/tcp")
    }
}

pub(crate) fn parse(bytes: &[u8], what: &str) -> Result<ParsedConfig, ImageError> {
    let raw: RawFile = serde_json::from_slice(bytes).map_err(|e| ImageError::document(what, e))?;
    let c = raw.config.unwrap_or_default();
    let mut exposed_ports: Vec<String> =
        c.exposed_ports.unwrap_or_default().keys().map(|p| normalize_port(p)).collect();
    exposed_ports.sort();
    exposed_ports.dedup();
    Ok(ParsedConfig {
        config: ImageConfig {
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            env: c.env.unwrap_or_default(),
            working_dir: non_empty(c.working_dir),
            user: non_empty(c.user),
            exposed_ports,
            stop_signal: non_empty(c.stop_signal),
        },
        diff_ids: raw.rootfs.map(|r| r.diff_ids).unwrap_or_default(),
        os: raw.os.unwrap_or_else(|| "linux".into()),
        architecture: raw.architecture.unwrap_or_default(),
    })
}

/// The Go name of this host's architecture, as registries and image configs spell it.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// An OCI image config document for `config` over layers with `diff_ids`.
pub(crate) fn to_json(config: &ImageConfig, diff_ids: &[String], created: &str, created_by: &str) -> Vec<u8> {
    let opt_vec = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let raw = RawConfig {
        entrypoint: opt_vec(&config.entrypoint),
        cmd: opt_vec(&config.cmd),
        env: opt_vec(&config.env),
        working_dir: config.working_dir.clone(),
        user: config.user.clone(),
        exposed_ports: (!config.exposed_ports.is_empty())
            .then(|| config.exposed_ports.iter().map(|p| (normalize_port(p), serde_json::json!({}))).collect()),
        stop_signal: config.stop_signal.clone(),
    };
    let doc = serde_json::json!({
        "created": created,
        "architecture": host_architecture(),
        "os": "linux",
        "config": raw,
        "rootfs": RawRootfs { kind: "layers".into(), diff_ids: diff_ids.to_vec() },
        "history": diff_ids.iter().map(|_| serde_json::json!({"created": created, "created_by": created_by})).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&doc).expect("a JSON value serializes")
}
