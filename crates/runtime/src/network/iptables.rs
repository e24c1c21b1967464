//! Reading the host's iptables rules: the host ports other DNAT rules already publish, and the
//! rules a task's CNI plugins leave behind when their DEL could not run in full (the bridge
//! plugin skips its masquerade rules when the namespace is already gone).
//!
//! The plugins name their per-container chains after `sha512(network name + container id)`
//! and tag their rules with the comment `name: "<network>" id: "<container id>"`; the firewall
//! plugin's rules carry only the task's address. That is what the sweep matches on.

use std::collections::{BTreeSet, HashSet};
use std::net::Ipv4Addr;

use sha2::{Digest, Sha512};

use super::{cmd, NetworkError, Protocol};

/// Chains that all CNI networks share; never removed.
const SHARED_CHAINS: [&str; 5] =
    ["CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ", "CNI-FORWARD", "CNI-ADMIN"];

/// The chains the bridge plugin (masquerade) and the portmap plugin (DNAT) make for one
/// container, as `utils.FormatChainName` of the CNI plugins names them.
pub(super) fn container_chains(network: &str, container_id: &str) -> [String; 2] {
    let hash = hex::encode(Sha512::digest(format!("{network}{container_id}").as_bytes()));
    [format!("CNI-{}", &hash[..24]), format!("CNI-DN-{}", &hash[..21])]
}

/// `iptables-save` of every table.
pub(super) async fn save() -> Result<String, NetworkError> {
    let out = cmd::run("iptables-save", &[], None).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The `(protocol, port)`s that DNAT rules of the `nat` table catch: ports published by
/// other agents, by other CNI users, or by a berth task whose record was lost.
pub(super) fn dnat_ports(save: &str) -> HashSet<(Protocol, u16)> {
    let mut ports = HashSet::new();
    let mut table = "";
    for line in save.lines() {
        if let Some(name) = line.strip_prefix('*') {
            table = name.trim();
            continue;
        }
        if table != "nat" || !line.starts_with("-A ") {
            continue;
        }
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if !tokens.windows(2).any(|w| w == ["-j", "DNAT"]) {
            continue;
        }
        let protocol = match tokens.windows(2).find(|w| w[0] == "-p").map(|w| w[1]) {
            Some("tcp") => Protocol::Tcp,
            Some("udp") => Protocol::Udp,
            _ => continue,
        };
        for w in tokens.windows(2).filter(|w| w[0] == "--dport" || w[0] == "--dports") {
            for part in w[1].split(',') {
                let (lo, hi) = part.split_once(':').unwrap_or((part, part));
                if let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>()) {
                    ports.extend((lo..=hi).map(|p| (protocol, p)));
                }
            }
        }
    }
    ports
}

/// What belongs to one task (or, with `container_id` `None`, to every task of `network`).
pub(super) struct Owner<'a> {
    pub network: &'a str,
    pub container_id: Option<&'a str>,
    pub ipv4: Option<Ipv4Addr>,
}

/// The `iptables-restore --noflush` script that removes `owner`'s rules and chains from
/// `save`, or `None` when nothing of it is left.
pub(super) fn sweep_script(save: &str, owner: &Owner<'_>) -> Option<String> {
    let tag = match owner.container_id {
        Some(id) => format!(r#"name: \"{}\" id: \"{id}\""#, owner.network),
        None => format!(r#"name: \"{}\" id: \""#, owner.network),
    };
    let address = owner.ipv4.map(|ip| format!("{ip}/32"));
    let mut script = String::new();
    for section in tables(save) {
        let mut chains: BTreeSet<String> = BTreeSet::new();
        if let Some(id) = owner.container_id {
            chains.extend(
                container_chains(owner.network, id).into_iter().filter(|c| section.chains.contains(c.as_str())),
            );
        }
        let mut doomed: Vec<&str> = Vec::new();
        for rule in &section.rules {
            let tokens: Vec<&str> = rule.split_whitespace().collect();
            let by_address = address.as_deref().is_some_and(|a| {
                tokens.get(1) == Some(&"CNI-FORWARD")
                    && tokens.windows(2).any(|w| (w[0] == "-s" || w[0] == "-d") && w[1] == a)
            });
            if rule.contains(&tag) || by_address {
                doomed.push(rule);
                if let Some(target) = tokens.windows(2).find(|w| w[0] == "-j").map(|w| w[1]) {
                    if target.starts_with("CNI-") && !SHARED_CHAINS.contains(&target) && section.chains.contains(target)
                    {
                        chains.insert(target.to_string());
                    }
                }
            }
        }
        // Rules that jump into a chain about to go must go first, wherever they are.
        for rule in &section.rules {
            let tokens: Vec<&str> = rule.split_whitespace().collect();
            let jumps_in = tokens.windows(2).any(|w| w[0] == "-j" && chains.contains(w[1]));
            if jumps_in && !doomed.contains(rule) {
                doomed.push(rule);
            }
        }
        // Rules inside a doomed chain go with its flush.
        doomed.retain(|rule| !rule.split_whitespace().nth(1).is_some_and(|c| chains.contains(c)));
        if doomed.is_empty() && chains.is_empty() {
            continue;
        }
        script.push_str(&format!("*{}\n", section.name));
        for rule in doomed {
            script.push_str(&format!("-D {}\n", &rule[3..]));
        }
        for chain in &chains {
            script.push_str(&format!("-F {chain}\n"));
        }
        for chain in &chains {
            script.push_str(&format!("-X {chain}\n"));
        }
        script.push_str("COMMIT\n");
    }
    (!script.is_empty()).then_some(script)
}

/// Remove what is left of `owner` in the host's iptables; whether anything was.
pub(super) async fn sweep(owner: &Owner<'_>) -> Result<bool, NetworkError> {
    let Some(script) = sweep_script(&save().await?, owner) else {
        return Ok(false);
    };
    tracing::warn!(network = owner.network, container = ?owner.container_id, "removing leftover iptables rules");
    cmd::run("iptables-restore", &["--noflush", "--wait"], Some(script.as_bytes())).await?;
    Ok(true)
}

struct Table<'a> {
    name: &'a str,
    chains: HashSet<&'a str>,
    rules: Vec<&'a str>,
}

fn tables(save: &str) -> Vec<Table<'_>> {
    let mut out: Vec<Table<'_>> = Vec::new();
    for line in save.lines() {
        if let Some(name) = line.strip_prefix('*') {
            out.push(Table { name: name.trim(), chains: HashSet::new(), rules: Vec::new() });
        } else if let Some(table) = out.last_mut() {
            if let Some(decl) = line.strip_prefix(':') {
                if let Some(chain) = decl.split_whitespace().next() {
                    table.chains.insert(chain);
                }
            } else if line.starts_with("-A ") {
                table.rules.push(line);
            }
        }
    }
    out
}
