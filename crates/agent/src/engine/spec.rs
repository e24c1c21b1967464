//! From an ECS container definition and its image to a runtime `ContainerConfig`.

use std::path::{Path, PathBuf};

use berth_api::model::{ContainerDefinition, NetworkMode, TaskDefinition};
use berth_runtime::container::{ContainerConfig, Mount, Namespace, Resources, Ulimit, MAX_ID_LEN};
use berth_runtime::images::Image;
use sha2::{Digest, Sha256};

/// What the task provides to each of its containers.
pub struct TaskContext<'a> {
    pub task_id: &'a str,
    pub definition: &'a TaskDefinition,
    pub cgroup: Option<String>,
    pub net_namespace: Namespace,
    pub volumes_dir: &'a Path,
    /// Where the container reaches the task endpoints (`http://169.254.170.2`).
    pub endpoint_base: &'a str,
    /// What the agent gives every container unless its definition sets it: the
    /// credentials URI, the berth endpoint, the region.
    pub agent_env: &'a [(String, String)],
    /// The container's `secrets`, resolved: they are set over its environment.
    pub secrets: &'a [(String, String)],
}

/// The runtime id of a task's container: `<task id>-<name>`, or, for a name too long for
/// a runtime id (ECS allows 255 characters), `<task id>-<digest of the name>`.
pub fn container_id(task_id: &str, name: &str) -> String {
    let id = format!("{task_id}-{name}");
    if id.len() <= MAX_ID_LEN {
        return id;
    }
    let digest = hex::encode(Sha256::digest(name.as_bytes()));
    format!("{task_id}-{}", &digest[..32])
}

/// Entrypoint and command as Docker resolves them: a definition's `entryPoint` replaces the
/// image's and drops the image's `Cmd`; its `command` replaces the image's `Cmd`.
pub fn args(def: &ContainerDefinition, image: &Image) -> Vec<String> {
    let entrypoint = def.entry_point.clone().unwrap_or_else(|| image.config.entrypoint.clone());
    let cmd = match (&def.command, &def.entry_point) {
        (Some(cmd), _) => cmd.clone(),
        (None, Some(_)) => Vec::new(),
        (None, None) => image.config.cmd.clone(),
    };
    entrypoint.into_iter().chain(cmd).collect()
}

/// The image's environment overlaid with the definition's, then with the secrets'.
fn env(def: &ContainerDefinition, image: &Image, secrets: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = image
        .config
        .env
        .iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    let defined = def
        .environment
        .iter()
        .flatten()
        .filter_map(|kv| Some((kv.name.clone()?, kv.value.clone().unwrap_or_default())));
    for (k, v) in defined.chain(secrets.iter().cloned()) {
        env.retain(|(name, _)| *name != k);
        env.push((k, v));
    }
    env
}

/// `env` with the agent's variables and the container's `ECS_CONTAINER_METADATA_URI_V4`
/// added where `env` does not set them.
fn with_agent_env(mut env: Vec<(String, String)>, ctx: &TaskContext<'_>, id: &str) -> Vec<(String, String)> {
    let metadata = ("ECS_CONTAINER_METADATA_URI_V4".to_string(), format!("{}/v4/{id}", ctx.endpoint_base));
    for (k, v) in ctx.agent_env.iter().cloned().chain([metadata]) {
        if !env.iter().any(|(name, _)| *name == k) {
            env.push((k, v));
        }
    }
    env
}

/// The host path behind a task volume: its `host.sourcePath`, else a task-scoped directory.
pub fn volume_source(ctx: &TaskContext<'_>, volume: &str) -> Option<PathBuf> {
    let v = ctx.definition.volumes.iter().flatten().find(|v| v.name.as_deref() == Some(volume))?;
    match v.host.as_ref().and_then(|h| h.source_path.clone()) {
        Some(path) => Some(PathBuf::from(path)),
        None => Some(ctx.volumes_dir.join(ctx.task_id).join(volume)),
    }
}

fn mounts(def: &ContainerDefinition, ctx: &TaskContext<'_>) -> Vec<Mount> {
    let mut mounts = own_mounts(def, ctx);
    for from in def.volumes_from.iter().flatten() {
        let source = ctx.definition.container_definitions.iter().flatten().find(|c| c.name == from.source_container);
        let read_only = from.read_only.unwrap_or(false);
        for m in source.map(|c| own_mounts(c, ctx)).unwrap_or_default() {
            mounts.push(match m {
                Mount::Bind { source, destination, readonly } => {
                    Mount::Bind { source, destination, readonly: readonly || read_only }
                }
                tmpfs => tmpfs,
            });
        }
    }
    mounts
}

fn own_mounts(def: &ContainerDefinition, ctx: &TaskContext<'_>) -> Vec<Mount> {
    let binds = def.mount_points.iter().flatten().filter_map(|m| {
        Some(Mount::Bind {
            source: volume_source(ctx, m.source_volume.as_deref()?)?,
            destination: m.container_path.clone()?,
            readonly: m.read_only.unwrap_or(false),
        })
    });
    let tmpfs = def.linux_parameters.iter().flat_map(|l| l.tmpfs.iter().flatten()).map(|t| Mount::Tmpfs {
        destination: t.container_path.clone().unwrap_or_default(),
        size_mib: t.size.and_then(|s| u64::try_from(s).ok()),
        options: t.mount_options.clone().unwrap_or_default(),
    });
    binds.chain(tmpfs).collect()
}

/// `/etc/hosts` extras: `extraHosts`, and in bridge mode each `links` name (the task's
/// containers share one network namespace, so a link is loopback).
fn hosts(def: &ContainerDefinition, mode: NetworkMode) -> Vec<(String, String)> {
    let extra = def.extra_hosts.iter().flatten().filter_map(|h| Some((h.hostname.clone()?, h.ip_address.clone()?)));
    let links = def
        .links
        .iter()
        .flatten()
        .filter(|_| mode == NetworkMode::Bridge)
        .map(|l| (l.rsplit(':').next().unwrap_or(l).to_string(), "127.0.0.1".to_string()));
    extra.chain(links).collect()
}

/// The runtime configuration of one container.
pub fn container_config(
    def: &ContainerDefinition,
    image: &Image,
    rootfs: PathBuf,
    ctx: &TaskContext<'_>,
) -> ContainerConfig {
    let mode = ctx.definition.network_mode.unwrap_or(NetworkMode::Bridge);
    let linux = def.linux_parameters.clone().unwrap_or_default();
    let caps = linux.capabilities.clone().unwrap_or_default();
    let name = def.name.clone().unwrap_or_default();
    ContainerConfig {
        id: container_id(ctx.task_id, &name),
        rootfs,
        args: args(def, image),
        env: with_agent_env(env(def, image, ctx.secrets), ctx, &container_id(ctx.task_id, &name)),
        cwd: def.working_directory.clone().or_else(|| image.config.working_dir.clone()),
        user: def.user.clone().or_else(|| image.config.user.clone()),
        hostname: def.hostname.clone(),
        mounts: mounts(def, ctx),
        readonly_rootfs: def.readonly_root_filesystem.unwrap_or(false),
        privileged: def.privileged.unwrap_or(false),
        cap_add: caps.add.unwrap_or_default(),
        cap_drop: caps.drop.unwrap_or_default(),
        init: linux.init_process_enabled.unwrap_or(false),
        shm_size_mib: linux.shared_memory_size.and_then(|s| u64::try_from(s).ok()),
        ulimits: def
            .ulimits
            .iter()
            .flatten()
            .filter_map(|u| {
                Some(Ulimit {
                    name: u.name?.as_str().to_string(),
                    soft: u64::try_from(u.soft_limit?).ok()?,
                    hard: u64::try_from(u.hard_limit?).ok()?,
                })
            })
            .collect(),
        resources: Resources {
            cpu_units: def.cpu.and_then(|c| u32::try_from(c).ok()),
            memory_limit_mib: def.memory.and_then(|m| u64::try_from(m).ok()),
            memory_reservation_mib: def.memory_reservation.and_then(|m| u64::try_from(m).ok()),
            pids_limit: None,
        },
        cgroup_parent: ctx.cgroup.clone(),
        net_namespace: ctx.net_namespace.clone(),
        hosts: hosts(def, mode),
        dns_servers: def.dns_servers.clone().unwrap_or_default(),
        dns_search: def.dns_search_domains.clone().unwrap_or_default(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_runtime::images::ImageConfig;

    #[test]
    fn container_ids_fit_the_runtime_for_every_ecs_name() {
        let task = "0123456789abcdef0123456789abcdef";
        assert_eq!(container_id(task, "web"), format!("{task}-web"));
        let (long, other) = ("n".repeat(255), format!("{}x", "n".repeat(254)));
        let id = container_id(task, &long);
        assert!(id.len() <= MAX_ID_LEN && id.starts_with(task), "{id}");
        assert_ne!(id, container_id(task, &other));
        assert_eq!(container_id(task, &"n".repeat(95)).len(), MAX_ID_LEN);
    }

    fn image(entrypoint: &[&str], cmd: &[&str]) -> Image {
        Image {
            reference: "r".into(),
            manifest_digest: "d".into(),
            id: "i".into(),
            config: ImageConfig {
                entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                env: vec!["PATH=/bin".into(), "MODE=image".into()],
                ..Default::default()
            },
            layers: Vec::new(),
        }
    }

    fn strings(v: &[&str]) -> Option<Vec<String>> {
        Some(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn entrypoint_and_command_follow_docker() {
        let img = image(&["/entry"], &["default"]);
        let def = ContainerDefinition::default();
        assert_eq!(args(&def, &img), ["/entry", "default"]);
        let def = ContainerDefinition { command: strings(&["x"]), ..Default::default() };
        assert_eq!(args(&def, &img), ["/entry", "x"]);
        let def = ContainerDefinition { entry_point: strings(&["/other"]), ..Default::default() };
        assert_eq!(args(&def, &img), ["/other"]);
    }

    #[test]
    fn definition_env_overrides_image_env_and_secrets_override_both() {
        let def = ContainerDefinition {
            environment: Some(vec![berth_api::model::KeyValuePair {
                name: Some("MODE".into()),
                value: Some("def".into()),
            }]),
            ..Default::default()
        };
        assert!(env(&def, &image(&[], &[]), &[]).contains(&("MODE".into(), "def".into())));
        let env = env(&def, &image(&[], &[]), &[("MODE".into(), "secret".into())]);
        assert!(env.contains(&("MODE".into(), "secret".into())));
        assert!(env.contains(&("PATH".into(), "/bin".into())));
        assert_eq!(env.iter().filter(|(k, _)| k == "MODE").count(), 1);
    }

    #[test]
    fn the_agent_env_fills_in_what_the_definition_does_not_set() {
        let def = TaskDefinition::default();
        let agent_env = [
            ("AWS_ENDPOINT_URL".to_string(), "http://169.254.170.2".to_string()),
            ("AWS_REGION".to_string(), "us-east-1".to_string()),
        ];
        let ctx = TaskContext {
            task_id: "t1",
            definition: &def,
            cgroup: None,
            net_namespace: Namespace::default(),
            volumes_dir: Path::new("/v"),
            endpoint_base: "http://169.254.170.2",
            agent_env: &agent_env,
            secrets: &[],
        };
        let own = vec![("AWS_REGION".to_string(), "eu-west-1".to_string())];
        let env = with_agent_env(own, &ctx, "t1-app");
        assert!(env.contains(&("AWS_REGION".into(), "eu-west-1".into())), "the definition wins: {env:?}");
        assert!(env.contains(&("AWS_ENDPOINT_URL".into(), "http://169.254.170.2".into())));
        let uri = ("ECS_CONTAINER_METADATA_URI_V4".to_string(), "http://169.254.170.2/v4/t1-app".to_string());
        assert!(env.contains(&uri), "{env:?}");
        assert_eq!(env.iter().filter(|(k, _)| k == "AWS_REGION").count(), 1);
    }
}
