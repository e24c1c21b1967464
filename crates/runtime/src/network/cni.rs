//! The CNI runtime side, as the CNI 1.0.0 specification describes it: each plugin is an
//! executable in `CNI_PATH`, run with `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`,
//! `CNI_IFNAME` and `CNI_PATH` in its environment and its network configuration on stdin;
//! it prints its result (or a CNI error) on stdout. A network configuration list runs in
//! order for ADD, each plugin getting the previous result as `prevResult`, and in reverse for
//! DEL, each getting the cached ADD result. Runtime config (`portMappings`) goes only to the
//! plugins that declare the capability.

use std::path::Path;
use std::process::Stdio;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{cmd, NetworkError, PortBinding};

/// The CNI version berth speaks; Debian 12's plugins (1.1.1) support 0.1.0 to 1.0.0.
pub(super) const CNI_VERSION: &str = "1.0.0";

/// The plugins the network lists use (host-local is the bridge plugin's IPAM).
pub(super) const PLUGINS: [&str; 4] = ["bridge", "host-local", "portmap", "firewall"];

/// An agent's bridge network.
#[derive(Debug, Clone)]
pub(super) struct BridgeNetwork<'a> {
    pub name: &'a str,
    pub bridge: &'a str,
    pub subnet: &'a str,
    pub ipam_dir: &'a Path,
}

/// The network configuration list of a task on `net`: `bridge` (host-local IPAM, the bridge's
/// address as the task's default gateway, masquerade for outbound traffic, hairpin so a task
/// reaches its own published ports), `portmap` when there are ports to publish, and
/// `firewall` (FORWARD accept rules, needed when the host's FORWARD policy is DROP).
pub(super) fn conflist(net: &BridgeNetwork<'_>, publish_ports: bool) -> Value {
    let mut plugins = vec![json!({
        "type": "bridge",
        "bridge": net.bridge,
        "isGateway": true,
        "ipMasq": true,
        "hairpinMode": true,
        "ipam": {
            "type": "host-local",
            "ranges": [[{ "subnet": net.subnet }]],
            "routes": [{ "dst": "0.0.0.0/0" }],
            "dataDir": net.ipam_dir,
        },
    })];
    if publish_ports {
        // snat (the default, spelled out): connections from the host's own addresses and from
        // 127.0.0.1 are masqueraded, and the bridge gets route_localnet=1, so a published port
        // answers on 127.0.0.1:hostPort too.
        plugins.push(json!({ "type": "portmap", "capabilities": { "portMappings": true }, "snat": true }));
    }
    plugins.push(json!({ "type": "firewall", "backend": "iptables" }));
    json!({ "cniVersion": CNI_VERSION, "name": net.name, "plugins": plugins })
}

/// The runtime config for `portMappings`.
pub(super) fn runtime_config(bindings: &[PortBinding]) -> Value {
    let mappings: Vec<Value> = bindings
        .iter()
        .map(|b| json!({ "hostPort": b.host_port, "containerPort": b.container_port, "protocol": b.protocol.as_str() }))
        .collect();
    json!({ "portMappings": mappings })
}

/// One attachment's CNI parameters.
#[derive(Debug, Clone, Copy)]
pub(super) struct Call<'a> {
    pub bin_dir: &'a Path,
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
}

/// ADD each plugin of `conflist` in order; `step` sees each plugin's result (to persist it
/// before the next plugin runs). The last result is the attachment's.
pub(super) async fn add(
    call: Call<'_>,
    conflist: &Value,
    runtime_config: &Value,
    mut step: impl FnMut(&Value) -> Result<(), NetworkError>,
) -> Result<Value, NetworkError> {
    let mut prev: Option<Value> = None;
    for plugin in plugins(conflist) {
        let stdin = plugin_config(conflist, plugin, runtime_config, prev.as_ref());
        let out = exec(call, "ADD", &stdin).await?;
        let result: Value = serde_json::from_slice(&out).map_err(|e| NetworkError::PluginExec {
            plugin: plugin_type(plugin).to_string(),
            reason: format!("ADD printed no JSON result: {e}: {}", String::from_utf8_lossy(&out).trim()),
        })?;
        step(&result)?;
        prev = Some(result);
    }
    prev.ok_or_else(|| NetworkError::InvalidConfig("network configuration list without plugins".into()))
}

/// DEL each plugin of `conflist` in reverse order with `prev` (the cached ADD result) as
/// `prevResult`. Every plugin runs even when one fails; the first error is returned.
pub(super) async fn del(
    call: Call<'_>,
    conflist: &Value,
    runtime_config: &Value,
    prev: Option<&Value>,
) -> Result<(), NetworkError> {
    let mut first_error = None;
    for plugin in plugins(conflist).iter().rev() {
        let stdin = plugin_config(conflist, plugin, runtime_config, prev);
        if let Err(e) = exec(call, "DEL", &stdin).await {
            tracing::warn!(task = call.container_id, error = %e, "CNI DEL failed");
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn plugins(conflist: &Value) -> Vec<&Value> {
    conflist.get("plugins").and_then(Value::as_array).map(|p| p.iter().collect()).unwrap_or_default()
}

fn plugin_type(plugin: &Value) -> &str {
    plugin.get("type").and_then(Value::as_str).unwrap_or("")
}

/// The configuration one plugin of a list gets on stdin: its own entry, plus the list's
/// `cniVersion` and `name`, the runtime config of its capabilities, and `prevResult`.
pub(super) fn plugin_config(conflist: &Value, plugin: &Value, runtime_config: &Value, prev: Option<&Value>) -> Value {
    let mut conf: Map<String, Value> = plugin.as_object().cloned().unwrap_or_default();
    conf.insert("cniVersion".into(), conflist.get("cniVersion").cloned().unwrap_or_else(|| CNI_VERSION.into()));
    conf.insert("name".into(), conflist.get("name").cloned().unwrap_or_default());
    let granted: Map<String, Value> = plugin
        .get("capabilities")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, on)| on.as_bool() == Some(true))
        .filter_map(|(cap, _)| runtime_config.get(cap).map(|v| (cap.clone(), v.clone())))
        .collect();
    if !granted.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(granted));
    }
    if let Some(prev) = prev {
        conf.insert("prevResult".into(), prev.clone());
    }
    Value::Object(conf)
}

/// A CNI error object (printed on stdout with a non-zero exit).
#[derive(Debug, Deserialize)]
struct CniError {
    #[serde(default)]
    code: u64,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    details: String,
}

async fn exec(call: Call<'_>, command: &'static str, stdin: &Value) -> Result<Vec<u8>, NetworkError> {
    let name = plugin_type(stdin).to_string();
    if name.is_empty() || name.contains('/') {
        return Err(NetworkError::PluginExec { plugin: name, reason: "not a plugin name".into() });
    }
    let binary = call.bin_dir.join(&name);
    let mut cmd = cmd::command(&binary);
    cmd.env_remove("CNI_ARGS")
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", call.container_id)
        .env("CNI_NETNS", call.netns)
        .env("CNI_IFNAME", call.ifname)
        .env("CNI_PATH", call.bin_dir)
        .stdout(Stdio::piped());
    let input = serde_json::to_vec(stdin).unwrap_or_default();
    let started = std::time::Instant::now();
    let out = cmd::output(cmd, Some(&input), &format!("{} {command}", binary.display()))
        .await
        .map_err(|e| NetworkError::PluginExec { plugin: name.clone(), reason: e.to_string() })?;
    tracing::debug!(plugin = %name, command, task = call.container_id, elapsed = ?started.elapsed(), "CNI plugin ran");
    if out.status.success() {
        return Ok(out.stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    match serde_json::from_slice::<CniError>(&out.stdout) {
        Ok(err) => Err(NetworkError::Plugin {
            plugin: name,
            command,
            task_id: call.container_id.to_string(),
            code: err.code,
            msg: if err.msg.is_empty() { stderr } else { err.msg },
            details: if err.details.is_empty() { String::new() } else { format!("; {}", err.details) },
        }),
        Err(_) => Err(NetworkError::PluginExec {
            plugin: name,
            reason: format!(
                "{command} exited with {}: {} {stderr}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim()
            ),
        }),
    }
}

/// Check that each plugin berth uses is in `bin_dir` and speaks [`CNI_VERSION`] (CNI `VERSION`).
pub(super) fn check_plugins(bin_dir: &Path) -> Result<(), NetworkError> {
    #[derive(Deserialize)]
    struct Versions {
        #[serde(rename = "supportedVersions", default)]
        supported: Vec<String>,
    }
    for name in PLUGINS {
        let binary = bin_dir.join(name);
        let fail = |reason: String| NetworkError::PluginExec { plugin: binary.display().to_string(), reason };
        let out = std::process::Command::new(&binary)
            .env("CNI_COMMAND", "VERSION")
            .env("PATH", cmd::tool_path())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| fail(format!("cannot run it ({e}); is containernetworking-plugins installed?")))?;
        let versions: Versions =
            serde_json::from_slice(&out.stdout).map_err(|e| fail(format!("VERSION printed no version info: {e}")))?;
        if !versions.supported.iter().any(|v| v == CNI_VERSION) {
            return Err(fail(format!(
                "does not support CNI {CNI_VERSION} (supports {})",
                versions.supported.join(", ")
            )));
        }
    }
    Ok(())
}

/// What the engine reports from a CNI result: the task's IPv4 address (without prefix), its
/// gateway and the MAC of its interface in the namespace.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Summary {
    pub ipv4: Option<String>,
    pub gateway: Option<String>,
    pub mac: Option<String>,
}

pub(super) fn summarize(result: &Value, ifname: &str) -> Summary {
    #[derive(Deserialize)]
    struct Interface {
        #[serde(default)]
        name: String,
        #[serde(default)]
        mac: Option<String>,
        #[serde(default)]
        sandbox: Option<String>,
    }
    #[derive(Deserialize)]
    struct Ip {
        address: String,
        #[serde(default)]
        gateway: Option<String>,
        #[serde(default)]
        interface: Option<usize>,
    }
    #[derive(Deserialize)]
    struct CniResult {
        #[serde(default)]
        interfaces: Vec<Interface>,
        #[serde(default)]
        ips: Vec<Ip>,
    }
    let Ok(result) = serde_json::from_value::<CniResult>(result.clone()) else {
        return Summary::default();
    };
    let in_sandbox = |i: &Interface| i.name == ifname && i.sandbox.as_deref().is_some_and(|s| !s.is_empty());
    let ip = result.ips.iter().find(|ip| {
        let v4 = ip.address.split('/').next().is_some_and(|a| a.parse::<std::net::Ipv4Addr>().is_ok());
        v4 && ip.interface.and_then(|i| result.interfaces.get(i)).is_none_or(in_sandbox)
    });
    Summary {
        ipv4: ip.and_then(|ip| ip.address.split('/').next()).map(str::to_string),
        gateway: ip.and_then(|ip| ip.gateway.clone()),
        mac: result.interfaces.iter().find(|i| in_sandbox(i)).and_then(|i| i.mac.clone()),
    }
}
