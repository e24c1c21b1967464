//! The container's `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`, written into
//! the container directory and bind-mounted over the image's files.

use std::fs;
use std::path::Path;

use super::{ContainerConfig, Namespace};

const HOST_HOSTS: &str = "/etc/hosts";
const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

/// The three files' contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EtcFiles {
    pub hosts: String,
    pub hostname: String,
    pub resolv_conf: String,
}

/// Builds the files from the config and the host's own files (read from `host_hosts`,
/// `host_resolv` so tests can pass their own).
pub(crate) fn build(cfg: &ContainerConfig, host_hosts: &str, host_resolv: &str, host_name: &str) -> EtcFiles {
    let own_netns = cfg.net_namespace != Namespace::Host;
    let mut hosts = if own_netns {
        String::from(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
             ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
        )
    } else {
        // Host network: the host's own hosts file, as Docker's --network host.
        let mut h = host_hosts.to_string();
        if !h.is_empty() && !h.ends_with('\n') {
            h.push('\n');
        }
        h
    };
    for (name, address) in &cfg.hosts {
        hosts.push_str(&format!("{address}\t{name}\n"));
    }

    let hostname = match (&cfg.hostname, &cfg.net_namespace) {
        (Some(name), _) => name.clone(),
        (None, Namespace::Host) => host_name.to_string(),
        // Docker's default: the first 12 characters of the container's id.
        (None, _) => cfg.id.chars().take(12).collect(),
    };

    let mut nameservers = Vec::new();
    let mut search = Vec::new();
    let mut options = Vec::new();
    for line in host_resolv.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => nameservers.extend(words.next().map(String::from)),
            Some("search") | Some("domain") => search = words.map(String::from).collect(),
            Some("options") => options.extend(words.map(String::from)),
            _ => {}
        }
    }
    if !cfg.dns_servers.is_empty() {
        nameservers = cfg.dns_servers.clone();
    } else if own_netns {
        // The host's loopback resolvers are unreachable from another network namespace.
        nameservers.retain(|ns| !is_loopback(ns));
    }
    if !cfg.dns_search.is_empty() {
        search = cfg.dns_search.clone();
    }
    let mut resolv_conf = String::new();
    if !search.is_empty() {
        resolv_conf.push_str(&format!("search {}\n", search.join(" ")));
    }
    for ns in &nameservers {
        resolv_conf.push_str(&format!("nameserver {ns}\n"));
    }
    if !options.is_empty() {
        resolv_conf.push_str(&format!("options {}\n", options.join(" ")));
    }
    EtcFiles { hosts, hostname, resolv_conf }
}

/// Builds the files from the host's real files.
pub(crate) fn build_from_host(cfg: &ContainerConfig) -> EtcFiles {
    let hosts = fs::read_to_string(HOST_HOSTS).unwrap_or_default();
    let resolv = fs::read_to_string(HOST_RESOLV_CONF).unwrap_or_default();
    let name =
        nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_else(|_| "localhost".into());
    build(cfg, &hosts, &resolv, &name)
}

impl EtcFiles {
    /// Writes `hosts`, `hostname` and `resolv.conf` into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        fs::create_dir_all(dir)?;
        fs::write(dir.join("hosts"), &self.hosts)?;
        fs::write(dir.join("hostname"), format!("{}\n", self.hostname))?;
        fs::write(dir.join("resolv.conf"), &self.resolv_conf)?;
        Ok(())
    }
}

fn is_loopback(address: &str) -> bool {
    address.parse::<std::net::IpAddr>().map(|a| a.is_loopback()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESOLV: &str =
        "# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp.example\noptions edns0\n";

    #[test]
    fn own_netns_gets_localhost_extra_hosts_and_non_loopback_dns() {
        let cfg = ContainerConfig {
            net_namespace: Namespace::Join("/run/netns/x".into()),
            hostname: Some("web".into()),
            hosts: vec![("db".into(), "10.1.0.5".into())],
            ..Default::default()
        };
        let f = build(&cfg, "1.2.3.4 hostonly\n", RESOLV, "hostbox");
        assert!(f.hosts.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(f.hosts.ends_with("10.1.0.5\tdb\n"));
        assert!(!f.hosts.contains("hostonly"));
        assert_eq!(f.hostname, "web");
        assert_eq!(f.resolv_conf, "search corp.example\nnameserver 10.0.0.2\noptions edns0\n");
    }

    #[test]
    fn host_network_keeps_host_files_and_dns_overrides_win() {
        let cfg = ContainerConfig {
            net_namespace: Namespace::Host,
            dns_servers: vec!["10.9.9.9".into()],
            dns_search: vec!["a.example".into(), "b.example".into()],
            ..Default::default()
        };
        let f = build(&cfg, "1.2.3.4 hostonly", RESOLV, "hostbox");
        assert_eq!(f.hosts, "1.2.3.4 hostonly\n");
        assert_eq!(f.hostname, "hostbox");
        assert_eq!(f.resolv_conf, "search a.example b.example\nnameserver 10.9.9.9\noptions edns0\n");
        // Host network keeps loopback resolvers (they are reachable there).
        let host = ContainerConfig { net_namespace: Namespace::Host, ..Default::default() };
        assert!(build(&host, "", RESOLV, "h").resolv_conf.contains("nameserver 127.0.0.53\n"));
        // A namespace of its own and no hostname: Docker's, the id's first 12 characters.
        let own = ContainerConfig { id: "0123456789abcdef-web".into(), ..Default::default() };
        assert_eq!(build(&own, "", RESOLV, "h").hostname, "0123456789ab");
    }
}
