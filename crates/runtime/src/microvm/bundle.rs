//! The OCI bundle as the guest's runc sees it: the same container, with paths under the
//! 9p shares and without what belongs to the host (the task's network namespace, which
//! the VM's own network replaces, the host cgroup path and limits, which the VM's size
//! replaces).

use std::path::Path;

use serde_json::Value;

use super::MicroVmError;

/// Where the guest mounts the container's rootfs share.
pub const GUEST_ROOT: &str = "/vm/root";
/// Where the guest mounts the container's bundle directory share.
pub const GUEST_BUNDLE: &str = "/vm/bundle";

/// Rewrites the host's `config.json` (of the bundle in `bundle_dir`) for the guest.
/// Refuses what cannot reach the VM: bind mounts from outside the bundle directory (host
/// volumes, the static init) and joined namespaces other than the network.
pub fn rewrite(config: &Value, bundle_dir: &Path) -> Result<Value, MicroVmError> {
    let mut config = config.clone();
    config["root"]["path"] = Value::from(GUEST_ROOT);
    if let Some(hooks) = config.as_object_mut() {
        hooks.remove("hooks");
    }
    let linux = &mut config["linux"];
    if let Some(linux) = linux.as_object_mut() {
        linux.remove("cgroupsPath");
        if let Some(resources) = linux.get_mut("resources").and_then(Value::as_object_mut) {
            resources.retain(|k, _| k == "devices");
        }
    }
    if let Some(namespaces) = linux.get_mut("namespaces").and_then(Value::as_array_mut) {
        let mut kept = Vec::new();
        for ns in namespaces.drain(..) {
            let typ = ns.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
            if typ == "network" {
                continue;
            }
            if let Some(path) = ns.get("path").and_then(Value::as_str) {
                return Err(MicroVmError::Unsupported(format!("joining the host's {typ} namespace {path}")));
            }
            kept.push(ns);
        }
        *namespaces = kept;
    }
    for mount in config.get_mut("mounts").and_then(Value::as_array_mut).into_iter().flatten() {
        if mount.get("type").and_then(Value::as_str) != Some("bind") {
            continue;
        }
        let source = mount.get("source").and_then(Value::as_str).unwrap_or_default().to_string();
        let destination = mount.get("destination").and_then(Value::as_str).unwrap_or_default().to_string();
        let inside = Path::new(&source)
            .strip_prefix(bundle_dir)
            .map_err(|_| MicroVmError::Unsupported(format!("the bind mount of host path {source} at {destination}")))?;
        mount["source"] = Value::from(format!("{GUEST_BUNDLE}/{}", inside.to_string_lossy()));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(extra_mount: Value, pid: Value) -> Value {
        json!({
            "root": {"path": "/data/containers/t1-app/rootfs"},
            "hooks": {"prestart": []},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/etc/hosts", "type": "bind", "source": "/state/containers/t1-app/etc/hosts", "options": ["rbind"]},
                extra_mount,
            ],
            "linux": {
                "cgroupsPath": "berth/t1/t1-app",
                "resources": {"devices": [{"allow": false, "access": "rwm"}], "memory": {"limit": 1}},
                "namespaces": [
                    {"type": "pid"}, pid, {"type": "network", "path": "/run/netns/berth0-t1"}, {"type": "mount"}
                ]
            }
        })
    }

    #[test]
    fn the_guest_bundle_uses_the_shares_and_drops_host_parts() {
        let tmpfs = json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs"});
        let out = rewrite(&config(tmpfs, json!({"type": "ipc"})), Path::new("/state/containers/t1-app")).unwrap();
        assert_eq!(out["root"]["path"], GUEST_ROOT);
        assert_eq!(out["mounts"][1]["source"], "/vm/bundle/etc/hosts");
        assert_eq!(out["mounts"][2]["source"], "tmpfs");
        assert!(out.get("hooks").is_none());
        assert!(out["linux"].get("cgroupsPath").is_none());
        assert_eq!(out["linux"]["resources"], json!({"devices": [{"allow": false, "access": "rwm"}]}));
        let types: Vec<&str> =
            out["linux"]["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["pid", "ipc", "mount"]);
    }

    #[test]
    fn host_paths_and_joined_namespaces_are_refused() {
        let dir = Path::new("/state/containers/t1-app");
        let volume = json!({"destination": "/data", "type": "bind", "source": "/var/lib/berth/volumes/t1/v"});
        let err = rewrite(&config(volume, json!({"type": "ipc"})), dir).unwrap_err().to_string();
        assert!(err.contains("/var/lib/berth/volumes/t1/v at /data"), "{err}");
        let tmpfs = json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs"});
        let err = rewrite(&config(tmpfs, json!({"type": "pid", "path": "/proc/9/ns/pid"})), dir).unwrap_err();
        assert!(err.to_string().contains("pid namespace /proc/9/ns/pid"), "{err}");
    }
}
