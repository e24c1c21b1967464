//! Unit tests: no root, no namespaces; the real thing is in `e2e_tests`.

use std::net::Ipv4Addr;
use std::path::Path;

use serde_json::json;

use super::iptables::{self, Owner};
use super::ports::PortTable;
use super::state::{Phase, StateStore, TaskRecord};
use super::*;

fn tcp(container_port: u16, host_port: Option<u16>) -> PortRequest {
    PortRequest { container_port, host_port, protocol: Protocol::Tcp }
}

fn never(_: Protocol, _: u16) -> bool {
    false
}

#[test]
fn config_validation() {
    assert!(validate_subnet("10.213.0.0/24").is_ok());
    assert!(validate_subnet("10.213.0.1/24").unwrap_err().to_string().contains("host bits"));
    assert!(validate_subnet("10.213.0.0/31").is_err());
    assert!(validate_subnet("10.213.0.0").is_err());
    assert!(validate_subnet("fd00::/64").is_err());
    assert!(validate_bridge("berth0").is_ok());
    assert!(validate_bridge("a-very-long-bridge-name").is_err());
    assert!(validate_bridge("br/0").is_err());
    assert!(validate_task_id("0123456789abcdef0123456789abcdef").is_ok());
    for bad in ["", "-x", "../etc", "a/b", "a b", &"x".repeat(101)] {
        assert!(matches!(validate_task_id(bad), Err(NetworkError::InvalidTaskId(_))), "{bad:?}");
    }
}

#[test]
fn modes_and_protocols_use_the_ecs_names() {
    for mode in [Mode::Bridge, Mode::Awsvpc, Mode::Host, Mode::None] {
        assert_eq!(mode.as_str().parse::<Mode>().unwrap(), mode);
        assert_eq!(serde_json::to_value(mode).unwrap(), json!(mode.as_str()));
    }
    assert!("nat".parse::<Mode>().is_err());
    assert_eq!("udp".parse::<Protocol>().unwrap(), Protocol::Udp);
    let binding =
        PortBinding { container_port: 80, host_port: 49153, protocol: Protocol::Tcp, bind_ip: "0.0.0.0".into() };
    assert_eq!(
        serde_json::to_value(&binding).unwrap(),
        json!({"containerPort": 80, "hostPort": 49153, "protocol": "tcp", "bindIP": "0.0.0.0"})
    );
}

#[test]
fn conflist_chains_bridge_portmap_firewall() {
    let net =
        cni::BridgeNetwork { name: "berth-br9", bridge: "br9", subnet: "10.9.0.0/24", ipam_dir: Path::new("/s/ipam") };
    let list = cni::conflist(&net, true);
    assert_eq!(list["cniVersion"], "1.0.0");
    assert_eq!(list["name"], "berth-br9");
    let types: Vec<_> = list["plugins"].as_array().unwrap().iter().map(|p| p["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["bridge", "portmap", "firewall"]);
    let bridge = &list["plugins"][0];
    assert_eq!(bridge["bridge"], "br9");
    assert_eq!(bridge["isGateway"], true);
    assert_eq!(bridge["ipMasq"], true);
    assert_eq!(bridge["hairpinMode"], true);
    assert_eq!(
        bridge["ipam"],
        json!({"type": "host-local", "ranges": [[{"subnet": "10.9.0.0/24"}]],
        "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "/s/ipam"})
    );
    assert_eq!(list["plugins"][1]["snat"], true);
    let without_ports = cni::conflist(&net, false);
    assert_eq!(without_ports["plugins"].as_array().unwrap().len(), 2);
}

#[test]
fn plugin_config_injects_version_name_capabilities_and_prev_result() {
    let net = cni::BridgeNetwork { name: "berth-br9", bridge: "br9", subnet: "10.9.0.0/24", ipam_dir: Path::new("/s") };
    let list = cni::conflist(&net, true);
    let binding =
        PortBinding { container_port: 80, host_port: 8080, protocol: Protocol::Udp, bind_ip: "0.0.0.0".into() };
    let rc = cni::runtime_config(&[binding]);
    assert_eq!(rc, json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "udp"}]}));
    let prev = json!({"cniVersion": "1.0.0", "ips": []});
    let bridge = cni::plugin_config(&list, &list["plugins"][0], &rc, None);
    assert_eq!(bridge["cniVersion"], "1.0.0");
    assert_eq!(bridge["name"], "berth-br9");
    assert!(bridge.get("runtimeConfig").is_none(), "bridge declares no portMappings capability");
    assert!(bridge.get("prevResult").is_none());
    let portmap = cni::plugin_config(&list, &list["plugins"][1], &rc, Some(&prev));
    assert_eq!(portmap["runtimeConfig"], rc);
    assert_eq!(portmap["prevResult"], prev);
}

/// The result Debian's bridge plugin printed for a task (taken from a real run).
fn bridge_result() -> serde_json::Value {
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "berthexp0", "mac": "8e:af:1b:2d:ae:92"},
            {"name": "veth9cffc36c", "mac": "4a:59:be:e2:61:af"},
            {"name": "eth0", "mac": "ce:18:53:67:98:62", "sandbox": "/run/netns/exp1"}
        ],
        "ips": [{"interface": 2, "address": "10.213.99.2/24", "gateway": "10.213.99.1"}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {}
    })
}

#[test]
fn result_summary_is_the_sandbox_interface() {
    let s = cni::summarize(&bridge_result(), "eth0");
    assert_eq!(s.ipv4.as_deref(), Some("10.213.99.2"));
    assert_eq!(s.gateway.as_deref(), Some("10.213.99.1"));
    assert_eq!(s.mac.as_deref(), Some("ce:18:53:67:98:62"));
    assert_eq!(cni::summarize(&json!({"garbage": 1}), "eth0"), cni::Summary::default());
}

/// `iptables-save` after portmap and bridge ADD of `exp1` (from a real run), plus a Docker
/// style DNAT and the rules of a second container `exp2`.
const SAVE: &str = r#"# Generated by iptables-save v1.8.9 (nf_tables)
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:CNI-ADMIN - [0:0]
:CNI-FORWARD - [0:0]
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
-A CNI-FORWARD -d 10.213.99.2/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -s 10.213.99.2/32 -j ACCEPT
-A CNI-FORWARD -d 10.213.99.22/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-800518a2e21173e0cb043225 - [0:0]
:CNI-DN-800518a2e21173e0cb043 - [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
:CNI-aaaaaaaaaaaaaaaaaaaaaaaa - [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A POSTROUTING -s 10.213.99.2/32 -m comment --comment "name: \"berth-exp\" id: \"exp1\"" -j CNI-800518a2e21173e0cb043225
-A POSTROUTING -s 10.213.99.3/32 -m comment --comment "name: \"berth-exp\" id: \"exp2\"" -j CNI-aaaaaaaaaaaaaaaaaaaaaaaa
-A CNI-800518a2e21173e0cb043225 -d 10.213.99.0/24 -m comment --comment "name: \"berth-exp\" id: \"exp1\"" -j ACCEPT
-A CNI-800518a2e21173e0cb043225 ! -d 224.0.0.0/4 -m comment --comment "name: \"berth-exp\" id: \"exp1\"" -j MASQUERADE
-A CNI-DN-800518a2e21173e0cb043 -s 10.213.99.0/24 -p tcp -m tcp --dport 38080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-800518a2e21173e0cb043 -s 127.0.0.1/32 -p tcp -m tcp --dport 38080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-800518a2e21173e0cb043 -p tcp -m tcp --dport 38080 -j DNAT --to-destination 10.213.99.2:80
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"berth-exp\" id: \"exp1\"" -m multiport --dports 38080 -j CNI-DN-800518a2e21173e0cb043
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
-A DOCKER ! -i docker0 -p udp -m udp --dport 5353:5354 -j DNAT --to-destination 172.17.0.2:53
COMMIT
"#;

#[test]
fn chain_names_match_the_plugins() {
    let [masq, dnat] = iptables::container_chains("berth-exp", "exp1");
    assert_eq!(masq, "CNI-800518a2e21173e0cb043225");
    assert_eq!(dnat, "CNI-DN-800518a2e21173e0cb043");
}

#[test]
fn dnat_ports_are_read_from_the_nat_table() {
    let ports = iptables::dnat_ports(SAVE);
    let mut sorted: Vec<_> = ports.into_iter().collect();
    sorted.sort();
    assert_eq!(sorted, [(Protocol::Tcp, 38080), (Protocol::Udp, 5353), (Protocol::Udp, 5354)]);
}

#[test]
fn sweep_removes_one_container_and_nothing_else() {
    let owner = Owner { network: "berth-exp", container_id: Some("exp1"), ipv4: Some(Ipv4Addr::new(10, 213, 99, 2)) };
    let script = iptables::sweep_script(SAVE, &owner).unwrap();
    let expected = r#"*filter
-D CNI-FORWARD -d 10.213.99.2/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-D CNI-FORWARD -s 10.213.99.2/32 -j ACCEPT
COMMIT
*nat
-D POSTROUTING -s 10.213.99.2/32 -m comment --comment "name: \"berth-exp\" id: \"exp1\"" -j CNI-800518a2e21173e0cb043225
-D CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"berth-exp\" id: \"exp1\"" -m multiport --dports 38080 -j CNI-DN-800518a2e21173e0cb043
-F CNI-800518a2e21173e0cb043225
-F CNI-DN-800518a2e21173e0cb043
-X CNI-800518a2e21173e0cb043225
-X CNI-DN-800518a2e21173e0cb043
COMMIT
"#;
    assert_eq!(script, expected);
    // Another network's container of the same id, and a container with no rules left.
    assert!(iptables::sweep_script(SAVE, &Owner { network: "berth-other", container_id: Some("exp1"), ipv4: None })
        .is_none());
    assert!(
        iptables::sweep_script(SAVE, &Owner { network: "berth-exp", container_id: Some("exp3"), ipv4: None }).is_none()
    );
    // Every container of the network (the tests' cleanup).
    let all = iptables::sweep_script(SAVE, &Owner { network: "berth-exp", container_id: None, ipv4: None }).unwrap();
    assert!(all.contains("-X CNI-aaaaaaaaaaaaaaaaaaaaaaaa"));
    assert!(all.contains("-X CNI-DN-800518a2e21173e0cb043"));
    assert!(!all.contains("CNI-HOSTPORT-MASQ"));
}

#[test]
fn static_ports_conflict_by_name() {
    let mut table = PortTable::new(49153..=65535, 0);
    let got = table.allocate("a", Mode::Bridge, &[tcp(80, Some(38080))], &never).unwrap();
    assert_eq!(got[0].host_port, 38080);
    assert_eq!(got[0].bind_ip, "0.0.0.0");
    let err = table.allocate("b", Mode::Bridge, &[tcp(8080, Some(38081)), tcp(80, Some(38080))], &never).unwrap_err();
    assert_eq!(err.to_string(), "RESOURCE:PORTS: host port 38080/tcp is already in use by task a");
    assert_eq!(table.holder(Protocol::Tcp, 38081), None, "nothing is held after an error");
    // The same port in UDP is another port.
    let udp = PortRequest { container_port: 53, host_port: Some(38080), protocol: Protocol::Udp };
    assert!(table.allocate("b", Mode::Bridge, &[udp], &never).is_ok());
    let on_host = table.allocate("c", Mode::Bridge, &[tcp(80, Some(38090))], &|_, p| p == 38090).unwrap_err();
    assert!(matches!(on_host, NetworkError::PortInUse { port: 38090, .. }), "{on_host}");
    assert!(on_host.to_string().ends_with("on the host"));
    let twice = table.allocate("c", Mode::Bridge, &[tcp(80, Some(38091)), tcp(81, Some(38091))], &never).unwrap_err();
    assert!(matches!(twice, NetworkError::InvalidPorts { .. }), "{twice}");
    table.release_task("a");
    assert!(table.allocate("d", Mode::Bridge, &[tcp(80, Some(38080))], &never).is_ok());
}

#[test]
fn dynamic_ports_skip_taken_ones_and_wrap() {
    let mut table = PortTable::new(50000..=50004, 3);
    table.allocate("a", Mode::Bridge, &[tcp(80, Some(50004))], &never).unwrap();
    let busy = |_: Protocol, p: u16| p == 50000;
    // Cursor at 50003: 50003, then 50004 (held) and 50000 (on the host) are skipped.
    let got = table.allocate("b", Mode::Bridge, &[tcp(80, None), tcp(81, Some(0))], &busy).unwrap();
    assert_eq!(got.iter().map(|b| b.host_port).collect::<Vec<_>>(), [50003, 50001]);
    let got = table.allocate("c", Mode::Bridge, &[tcp(80, None)], &busy).unwrap();
    assert_eq!(got[0].host_port, 50002);
    let err = table.allocate("d", Mode::Bridge, &[tcp(80, None)], &busy).unwrap_err();
    assert_eq!(err.to_string(), "RESOURCE:PORTS: no free tcp host port left in the ephemeral range 50000-50004");
}

#[test]
fn ports_per_mode() {
    let mut table = PortTable::new(49153..=65535, 0);
    let err = table.allocate("a", Mode::Awsvpc, &[tcp(80, Some(8080))], &never).unwrap_err();
    assert!(err.to_string().contains("host ports and container ports in port mappings must match"), "{err}");
    assert!(table.allocate("a", Mode::Awsvpc, &[tcp(80, Some(80)), tcp(81, None)], &never).unwrap().is_empty());
    let host = table.allocate("h", Mode::Host, &[tcp(8080, None)], &never).unwrap();
    assert_eq!((host[0].container_port, host[0].host_port), (8080, 8080));
    assert!(matches!(
        table.allocate("h2", Mode::Host, &[tcp(8080, Some(8080))], &never),
        Err(NetworkError::PortInUse { port: 8080, .. })
    ));
    assert!(table.allocate("n", Mode::None, &[tcp(80, None)], &never).is_err());
    assert!(table.allocate("n", Mode::None, &[], &never).unwrap().is_empty());
    assert!(table.allocate("z", Mode::Bridge, &[tcp(0, None)], &never).is_err());
}

#[test]
fn records_round_trip_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path().join("tasks")).unwrap();
    let binding =
        PortBinding { container_port: 80, host_port: 49200, protocol: Protocol::Tcp, bind_ip: "0.0.0.0".into() };
    let mut record = TaskRecord::new("t1", Mode::Bridge, Some("br-t1".into()), vec![binding]);
    store.save_synced(&record).unwrap();
    record.phase = Phase::Ready;
    store.save(&record).unwrap();
    std::fs::write(dir.path().join("tasks/t9.json.tmp"), b"half").unwrap();
    std::fs::write(dir.path().join("tasks/bad.json"), b"{").unwrap();
    let loaded = store.load("t1").unwrap().unwrap();
    assert_eq!((loaded.phase, loaded.bindings.len()), (Phase::Ready, 1));
    let listed: Vec<_> = store.list().unwrap().into_iter().map(|r| r.task_id).collect();
    assert_eq!(listed, ["t1"], "a corrupt record and a temporary file are skipped");
    assert!(!dir.path().join("tasks/t9.json.tmp").exists());
    assert!(matches!(store.load("bad"), Err(NetworkError::CorruptState { .. })));
    store.remove("t1").unwrap();
    store.remove("t1").unwrap();
    assert!(store.load("t1").unwrap().is_none());
}

/// The engine spawns these futures on a multi-threaded runtime.
#[allow(dead_code)]
fn futures_are_send(net: &Networks) {
    fn send<T: Send>(_: T) {}
    send(net.setup_task("t", Mode::Bridge, &[]));
    send(net.teardown_task("t"));
}
