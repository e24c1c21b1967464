//! Named network namespaces, made and removed with iproute2 (`ip netns`), so berth needs no
//! `unsafe` `setns` of its own and the namespaces are the ones `ip netns` users see.

use std::path::{Path, PathBuf};

use super::{cmd, NetworkError};

/// Where `ip netns` keeps its namespaces (bind mounts of `/proc/<pid>/ns/net`).
pub(super) const NETNS_DIR: &str = "/run/netns";

pub(super) fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

pub(super) fn exists(name: &str) -> bool {
    path(name).exists()
}

/// A new namespace `name` with `lo` up. Fails if it exists already.
pub(super) async fn create(name: &str) -> Result<(), NetworkError> {
    cmd::run("ip", &["netns", "add", name], None).await?;
    if let Err(e) = cmd::run("ip", &["-n", name, "link", "set", "lo", "up"], None).await {
        let _ = delete(name).await;
        return Err(e);
    }
    Ok(())
}

/// Remove the namespace `name`; nothing to do when it is gone already.
pub(super) async fn delete(name: &str) -> Result<(), NetworkError> {
    if !exists(name) {
        return Ok(());
    }
    match cmd::run("ip", &["netns", "delete", name], None).await {
        Err(_) if !exists(name) => Ok(()),
        other => other.map(drop),
    }
}
