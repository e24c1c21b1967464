//! End-to-end tests on real namespaces, bridges, CNI plugins and iptables. They need root and
//! Debian's `containernetworking-plugins`, `iproute2`, `iptables` and `busybox-static`;
//! without them each test says so and passes.
//!
//! Every test has its own bridge (`bt<pid><tag>`) and a /24 of 10.213.0.0/16 no route uses yet,
//! and an [`Env`] guard that, even when the test fails, kills the listeners, deletes the
//! test's namespaces, its iptables rules and its bridge. Traffic goes only to 127.0.0.1, the
//! test's bridge address and the test's namespaces.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex as StdMutex;
use std::time::{Duration, Instant};

use super::iptables::{self, Owner};
use super::*;

fn tcp(container_port: u16, host_port: Option<u16>) -> PortRequest {
    PortRequest { container_port, host_port, protocol: Protocol::Tcp }
}

fn udp(container_port: u16, host_port: Option<u16>) -> PortRequest {
    PortRequest { container_port, host_port, protocol: Protocol::Udp }
}

fn runnable() -> bool {
    let ok = nix::unistd::Uid::effective().is_root()
        && Path::new(DEFAULT_CNI_BIN_DIR).join("bridge").exists()
        && Path::new("/bin/busybox").exists();
    if !ok {
        eprintln!("skipped: needs root, {DEFAULT_CNI_BIN_DIR}/bridge and busybox");
    }
    ok
}

fn sh(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program).args(args).env("PATH", super::cmd::tool_path()).output().expect("run a host tool")
}

fn stdout(program: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&sh(program, args).stdout).into_owned()
}

/// A /24 of 10.213.0.0/16 that no route of the host uses (never 10.213.0.0/24, the default).
fn free_subnet() -> (String, Ipv4Addr) {
    static NEXT: AtomicU8 = AtomicU8::new(0);
    let routes = stdout("ip", &["-4", "route", "show"]);
    loop {
        let third = 100 + (std::process::id() % 50) as u8 + NEXT.fetch_add(1, Ordering::SeqCst);
        let subnet = format!("10.213.{third}.0/24");
        if !routes.contains(&subnet) {
            return (subnet, Ipv4Addr::new(10, 213, third, 1));
        }
    }
}

/// A TCP port nothing listens on (the kernel's choice).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One agent's networks on a bridge of its own, and everything a test made on it.
struct Env {
    net: Option<Networks>,
    cfg: NetworkConfig,
    gateway: Ipv4Addr,
    listeners: StdMutex<Vec<(String, Child)>>,
    dir: tempfile::TempDir,
}

impl Env {
    fn new(tag: char) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let (subnet, gateway) = free_subnet();
        let cfg = NetworkConfig {
            bridge: format!("bt{}{tag}", std::process::id()),
            subnet,
            cni_bin_dir: PathBuf::from(DEFAULT_CNI_BIN_DIR),
            state_dir: dir.path().join("state"),
            ephemeral_ports: ECS_EPHEMERAL_PORTS,
        };
        let net = Networks::new(cfg.clone()).expect("networks");
        Env { net: Some(net), cfg, gateway, listeners: StdMutex::new(Vec::new()), dir }
    }

    fn net(&self) -> &Networks {
        self.net.as_ref().unwrap()
    }

    /// An agent restart: drop the `Networks` and make a new one on the same state.
    fn restart(&mut self) {
        self.net = None;
        self.net = Some(Networks::new(self.cfg.clone()).expect("networks after restart"));
    }

    fn network_name(&self) -> String {
        format!("berth-{}", self.cfg.bridge)
    }

    fn netns_name(&self, task: &str) -> String {
        format!("{}-{task}", self.cfg.bridge)
    }

    fn in_subnet(&self, ip: &str) -> bool {
        let prefix = self.cfg.subnet.trim_end_matches("0/24");
        ip.starts_with(prefix) && ip != self.gateway.to_string()
    }

    /// `busybox httpd` in the task's namespace on `bind` (`80`, `127.0.0.1:81`) answering `marker`.
    fn httpd(&self, task: &str, bind: &str, marker: &str) {
        let root = self.dir.path().join(format!("www-{task}-{}", bind.replace(':', "_")));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("index.html"), format!("{marker}\n")).unwrap();
        let ns = self.netns_name(task);
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, "busybox", "httpd", "-f", "-p", bind, "-h"])
            .arg(&root)
            .env("PATH", super::cmd::tool_path())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.listeners.lock().unwrap().push((ns.clone(), child));
        let port = bind.rsplit(':').next().unwrap();
        let host = if bind.contains(':') { bind.split(':').next().unwrap() } else { "127.0.0.1" };
        let deadline = Instant::now() + Duration::from_secs(3);
        while !ns_get(&ns, host, port.parse().unwrap()).contains(marker) {
            assert!(Instant::now() < deadline, "httpd in {ns} on {bind} did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop_listeners(&self, task: &str) {
        let ns = self.netns_name(task);
        let mut listeners = self.listeners.lock().unwrap();
        for (_, child) in listeners.iter_mut().filter(|(n, _)| *n == ns) {
            let _ = child.kill();
            let _ = child.wait();
        }
        listeners.retain(|(n, _)| *n != ns);
    }

    /// Nothing of `task` is left: no namespace, no record, no iptables rule or chain.
    fn assert_gone(&self, task: &str, ipv4: Option<&str>) {
        assert!(!netns::exists(&self.netns_name(task)), "namespace of {task} is left");
        assert!(self.net().recover(task).unwrap().is_none(), "record of {task} is left");
        let save = stdout("iptables-save", &[]);
        let tag = format!(r#"name: \"{}\" id: \"{task}\""#, self.network_name());
        assert!(!save.contains(&tag), "iptables rules of {task} are left:\n{save}");
        for chain in iptables::container_chains(&self.network_name(), task) {
            assert!(!save.contains(&chain), "chain {chain} of {task} is left");
        }
        if let Some(ip) = ipv4 {
            assert!(!save.contains(&format!("{ip}/32 ")), "firewall rules of {task} ({ip}) are left:\n{save}");
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for (_, mut child) in self.listeners.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let prefix = format!("{}-", self.cfg.bridge);
        if let Ok(entries) = std::fs::read_dir(netns::NETNS_DIR) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(&prefix) {
                    sh("ip", &["netns", "delete", &name]);
                }
            }
        }
        let network = self.network_name();
        let save = stdout("iptables-save", &[]);
        if let Some(script) =
            iptables::sweep_script(&save, &Owner { network: &network, container_id: None, ipv4: None })
        {
            pipe("iptables-restore", &["--noflush", "--wait"], &script);
        }
        // The firewall plugin's rules carry only the task's address.
        let prefix = self.cfg.subnet.trim_end_matches("0/24");
        let forward: String = stdout("iptables-save", &["-t", "filter"])
            .lines()
            .filter(|l| l.starts_with("-A CNI-FORWARD ") && l.contains(&format!(" {prefix}")))
            .map(|l| format!("-D {}\n", &l[3..]))
            .collect();
        if !forward.is_empty() {
            pipe("iptables-restore", &["--noflush", "--wait"], &format!("*filter\n{forward}COMMIT\n"));
        }
        sh("ip", &["link", "delete", &self.cfg.bridge]);
    }
}

fn pipe(program: &str, args: &[&str], input: &str) {
    let mut child =
        Command::new(program).args(args).env("PATH", super::cmd::tool_path()).stdin(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let _ = child.wait();
}

/// An HTTP GET from the host to `addr:port` (loopback or the test's bridge); the response or "".
fn host_get(addr: Ipv4Addr, port: u16) -> String {
    let Ok(mut stream) = TcpStream::connect_timeout(&SocketAddr::from((addr, port)), Duration::from_secs(2)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.write_all(b"GET / HTTP/1.0\r\n\r\n");
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body
}

/// Retry [`host_get`] until the answer has `marker` (the DNAT rules are in place when
/// setup_task returns; the retry only absorbs listener start-up).
fn host_sees(addr: Ipv4Addr, port: u16, marker: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if host_get(addr, port).contains(marker) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An HTTP GET from inside the namespace `ns` with busybox nc; the response or "".
fn ns_get(ns: &str, addr: &str, port: u16) -> String {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "busybox", "nc", "-w", "2", addr, &port.to_string()])
        .env("PATH", super::cmd::tool_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(b"GET / HTTP/1.0\r\n\r\n");
    String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned()
}

#[tokio::test]
async fn bridge_mode_end_to_end() {
    if !runnable() {
        return;
    }
    let env = Env::new('a');
    let net = env.net();
    let fixed = free_port();
    let a = net.setup_task("ta", Mode::Bridge, &[tcp(80, Some(fixed)), tcp(80, Some(0)), udp(53, None)]).await.unwrap();
    let b = net.setup_task("tb", Mode::Bridge, &[tcp(80, None)]).await.unwrap();

    // Each task: its own namespace and address on the bridge subnet, the bridge as gateway.
    let (a_ip, b_ip) = (a.ipv4.clone().unwrap(), b.ipv4.clone().unwrap());
    assert_ne!(a_ip, b_ip);
    assert!(env.in_subnet(&a_ip) && env.in_subnet(&b_ip), "{a_ip} {b_ip} in {}", env.cfg.subnet);
    assert_eq!(a.gateway, Some(env.gateway.to_string()));
    assert_eq!(a.namespace, Namespace::Join(Path::new("/run/netns").join(env.netns_name("ta"))));
    assert!(netns::exists(&env.netns_name("ta")) && netns::exists(&env.netns_name("tb")));
    assert_eq!(a.interface.as_deref(), Some("eth0"));
    assert!(a.mac.as_deref().is_some_and(|m| m.len() == 17));
    assert_eq!(a.mode, Mode::Bridge);

    // Bindings: the static port as asked, the dynamic ones from the ephemeral range.
    assert_eq!((a.bindings[0].container_port, a.bindings[0].host_port), (80, fixed));
    let a_dynamic = a.bindings[1].host_port;
    let (a_udp, b_dynamic) = (a.bindings[2].host_port, b.bindings[0].host_port);
    for port in [a_dynamic, a_udp, b_dynamic] {
        assert!(ECS_EPHEMERAL_PORTS.contains(&port), "{port} outside the ephemeral range");
    }
    assert_ne!(a_dynamic, b_dynamic);
    assert!(a.bindings.iter().all(|b| b.bind_ip == "0.0.0.0"));
    assert_eq!(a.bindings[2].protocol, Protocol::Udp);
    let save = stdout("iptables-save", &["-t", "nat"]);
    assert!(save.contains(&format!("-p udp -m udp --dport {a_udp} -j DNAT --to-destination {a_ip}:53")), "{save}");

    // Outbound traffic is masqueraded (not exercised: these tests send nothing off the host).
    let tag = format!(r#"-s {a_ip}/32 -m comment --comment "name: \"{}\" id: \"ta\"""#, env.network_name());
    assert!(save.contains(&tag) && save.contains("-j MASQUERADE"), "{save}");

    env.httpd("ta", "80", "task-a");
    env.httpd("ta", "127.0.0.1:81", "a-loopback-only");
    env.httpd("tb", "80", "task-b");
    let lo = Ipv4Addr::LOCALHOST;

    // Published ports answer from the host on 127.0.0.1 and on the host's bridge address.
    assert!(host_sees(lo, fixed, "task-a"), "static port {fixed} on 127.0.0.1");
    assert!(host_sees(env.gateway, fixed, "task-a"), "static port {fixed} on {}", env.gateway);
    assert!(host_sees(lo, a_dynamic, "task-a"), "dynamic port {a_dynamic} on 127.0.0.1");
    assert!(host_sees(lo, b_dynamic, "task-b"), "dynamic port {b_dynamic} on 127.0.0.1");

    // Task to task by address, and through published ports on the host (hairpin, also to itself).
    assert!(ns_get(&env.netns_name("ta"), &b_ip, 80).contains("task-b"));
    assert!(ns_get(&env.netns_name("ta"), &env.gateway.to_string(), b_dynamic).contains("task-b"));
    assert!(ns_get(&env.netns_name("ta"), &env.gateway.to_string(), fixed).contains("task-a"));

    // Isolation: A's loopback listener answers in A only.
    assert!(ns_get(&env.netns_name("ta"), "127.0.0.1", 81).contains("a-loopback-only"));
    assert!(ns_get(&env.netns_name("tb"), "127.0.0.1", 81).is_empty());
    assert!(ns_get(&env.netns_name("tb"), &a_ip, 81).is_empty());
    assert!(!host_get(lo, 81).contains("a-loopback-only"));

    // The same static host port again: a clean RESOURCE:PORTS error naming it, nothing left.
    let err = net.setup_task("tc", Mode::Bridge, &[tcp(8080, Some(fixed))]).await.unwrap_err();
    assert!(matches!(err, NetworkError::PortInUse { port, .. } if port == fixed), "{err}");
    let message = err.to_string();
    assert!(message.starts_with("RESOURCE:PORTS") && message.contains(&format!("{fixed}/tcp")), "{message}");
    env.assert_gone("tc", None);

    // Teardown: namespace, rules and record gone; again is fine; the port is free for reuse.
    env.stop_listeners("ta");
    net.teardown_task("ta").await.unwrap();
    env.assert_gone("ta", Some(&a_ip));
    net.teardown_task("ta").await.unwrap();
    assert!(host_get(lo, fixed).is_empty(), "port {fixed} still answers after teardown");
    let d = net.setup_task("td", Mode::Bridge, &[tcp(80, Some(fixed))]).await.unwrap();
    env.httpd("td", "80", "task-d");
    assert!(host_sees(lo, fixed, "task-d"), "reused port {fixed}");
    assert!(host_sees(lo, b_dynamic, "task-b"), "B untouched by A's teardown");

    for task in ["tb", "td"] {
        env.stop_listeners(task);
        net.teardown_task(task).await.unwrap();
    }
    env.assert_gone("tb", b.ipv4.as_deref());
    env.assert_gone("td", d.ipv4.as_deref());
    assert!(net.recorded_tasks().unwrap().is_empty());
}

#[tokio::test]
async fn recover_after_restart() {
    if !runnable() {
        return;
    }
    let mut env = Env::new('r');
    let fixed = free_port();
    let set_up = env.net().setup_task("tr", Mode::Bridge, &[tcp(80, Some(fixed)), tcp(80, None)]).await.unwrap();
    env.httpd("tr", "80", "task-r");

    env.restart();
    let recovered = env.net().recover("tr").unwrap().expect("recorded network");
    assert_eq!(recovered, set_up);
    assert!(host_sees(Ipv4Addr::LOCALHOST, fixed, "task-r"), "the task keeps serving over the restart");
    // The new agent knows the ports are handed out.
    let err = env.net().setup_task("tr2", Mode::Bridge, &[tcp(80, Some(fixed))]).await.unwrap_err();
    assert!(matches!(err, NetworkError::PortInUse { .. }), "{err}");
    assert!(matches!(env.net().setup_task("tr", Mode::Bridge, &[]).await, Err(NetworkError::TaskExists(_))));

    // A crash in the middle of setup: the record says so, teardown finishes it.
    let half = env.net().setup_task("tx", Mode::Bridge, &[tcp(80, None)]).await.unwrap();
    let record_path = env.cfg.state_dir.join("tasks/tx.json");
    let record =
        std::fs::read_to_string(&record_path).unwrap().replace(r#""phase": "ready""#, r#""phase": "settingUp""#);
    std::fs::write(&record_path, record).unwrap();
    env.restart();
    assert!(matches!(env.net().recover("tx"), Err(NetworkError::SetupIncomplete(_))));

    // A namespace that vanished behind the agent's back: the bridge plugin's DEL then skips its
    // masquerade rules, and the sweep after DEL removes them.
    let gone = env.net().setup_task("tg", Mode::Bridge, &[tcp(80, None)]).await.unwrap();
    assert!(sh("ip", &["netns", "delete", &env.netns_name("tg")]).status.success());

    env.stop_listeners("tr");
    for task in ["tr", "tx", "tg"] {
        env.net().teardown_task(task).await.unwrap();
    }
    env.assert_gone("tr", set_up.ipv4.as_deref());
    env.assert_gone("tx", half.ipv4.as_deref());
    env.assert_gone("tg", gone.ipv4.as_deref());
    assert!(env.net().recorded_tasks().unwrap().is_empty());
    // The ports are free again in the restarted agent.
    env.net().setup_task("tr2", Mode::Bridge, &[tcp(80, Some(fixed))]).await.unwrap();
    env.net().teardown_task("tr2").await.unwrap();
}

#[tokio::test]
async fn awsvpc_none_and_host_modes() {
    if !runnable() {
        return;
    }
    let env = Env::new('m');
    let net = env.net();

    // awsvpc: an address of its own, nothing published; the task's containers share localhost.
    let aw = net.setup_task("aw", Mode::Awsvpc, &[tcp(80, Some(80)), tcp(81, None)]).await.unwrap();
    let ip = aw.ipv4.clone().expect("awsvpc reports the ENI address");
    assert!(env.in_subnet(&ip));
    assert!(aw.bindings.is_empty());
    assert_eq!(aw.interface.as_deref(), Some("eth0"));
    assert!(aw.mac.is_some());
    env.httpd("aw", "127.0.0.1:80", "aw-localhost");
    assert!(ns_get(&env.netns_name("aw"), "127.0.0.1", 80).contains("aw-localhost"), "containers share localhost");
    env.httpd("aw", "81", "aw-eni");
    assert!(host_sees(ip.parse().unwrap(), 81, "aw-eni"), "the ENI address answers from the host");
    assert!(
        !stdout("iptables-save", &["-t", "nat"]).contains(&format!("--to-destination {ip}:")),
        "awsvpc publishes nothing"
    );
    let err = net.setup_task("aw2", Mode::Awsvpc, &[tcp(80, Some(8080))]).await.unwrap_err();
    assert!(matches!(err, NetworkError::InvalidPorts { mode: Mode::Awsvpc, .. }), "{err}");
    env.assert_gone("aw2", None);

    // none: nothing made here; each container gets a private namespace from runc.
    let none = net.setup_task("no", Mode::None, &[]).await.unwrap();
    assert_eq!(none.namespace, Namespace::Private);
    assert!(!netns::exists(&env.netns_name("no")));
    assert_eq!((none.ipv4, none.interface, none.bindings.len()), (None, None, 0));
    assert!(!net.recorded_tasks().unwrap().contains(&"no".to_string()), "nothing to undo, so no record");
    assert!(net.setup_task("no2", Mode::None, &[tcp(80, None)]).await.is_err());
    env.assert_gone("no2", None);

    // host: no namespace; the container ports are the host ports, checked free.
    let port = free_port();
    let host = net.setup_task("ho", Mode::Host, &[tcp(port, None)]).await.unwrap();
    assert_eq!(host.namespace, Namespace::Host);
    assert!(!netns::exists(&env.netns_name("ho")));
    assert_eq!(
        host.bindings,
        [PortBinding { container_port: port, host_port: port, protocol: Protocol::Tcp, bind_ip: "0.0.0.0".into() }]
    );
    assert!(matches!(net.setup_task("ho2", Mode::Host, &[tcp(port, None)]).await, Err(NetworkError::PortInUse { .. })));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = listener.local_addr().unwrap().port();
    let err = net.setup_task("ho3", Mode::Host, &[tcp(busy, None)]).await.unwrap_err();
    assert!(err.to_string().contains(&format!("{busy}/tcp is already in use on the host")), "{err}");

    env.stop_listeners("aw");
    for task in ["aw", "no", "ho"] {
        net.teardown_task(task).await.unwrap();
    }
    env.assert_gone("aw", Some(&ip));
    env.assert_gone("no", None);
    env.assert_gone("ho", None);
    assert!(net.recorded_tasks().unwrap().is_empty());
}

#[tokio::test]
async fn two_agents_on_one_host() {
    if !runnable() {
        return;
    }
    let (one, two) = (Env::new('1'), Env::new('2'));
    let (p1, p2) = (free_port(), free_port());
    let t1 = one.net().setup_task("same", Mode::Bridge, &[tcp(80, Some(p1))]).await.unwrap();
    // The other agent sees the first one's published port through its DNAT rules.
    let err = two.net().setup_task("same", Mode::Bridge, &[tcp(80, Some(p1))]).await.unwrap_err();
    assert!(err.to_string().contains(&format!("{p1}/tcp is already in use on the host")), "{err}");
    let t2 = two.net().setup_task("same", Mode::Bridge, &[tcp(80, Some(p2))]).await.unwrap();
    assert!(one.in_subnet(t1.ipv4.as_deref().unwrap()) && two.in_subnet(t2.ipv4.as_deref().unwrap()));
    assert_ne!(t1.namespace, t2.namespace);
    one.httpd("same", "80", "agent-one");
    two.httpd("same", "80", "agent-two");
    assert!(host_sees(Ipv4Addr::LOCALHOST, p1, "agent-one"));
    assert!(host_sees(Ipv4Addr::LOCALHOST, p2, "agent-two"));

    one.stop_listeners("same");
    one.net().teardown_task("same").await.unwrap();
    one.assert_gone("same", t1.ipv4.as_deref());
    assert!(host_sees(Ipv4Addr::LOCALHOST, p2, "agent-two"), "agent two's task outlives agent one's teardown");
    let save = stdout("iptables-save", &[]);
    assert!(save.contains(&format!(r#"name: \"{}\" id: \"same\""#, two.network_name())));
    two.stop_listeners("same");
    two.net().teardown_task("same").await.unwrap();
    two.assert_gone("same", t2.ipv4.as_deref());
}

#[tokio::test]
async fn failed_setup_is_undone() {
    if !runnable() {
        return;
    }
    let env = Env::new('f');
    // A link with the bridge's name that is not a bridge (a veth): the bridge plugin's ADD fails.
    let peer = format!("{}p", env.cfg.bridge);
    assert!(sh("ip", &["link", "add", &env.cfg.bridge, "type", "veth", "peer", "name", &peer]).status.success());
    let port = free_port();
    let err = env.net().setup_task("tf", Mode::Bridge, &[tcp(80, Some(port))]).await.unwrap_err();
    assert!(matches!(&err, NetworkError::Plugin { plugin, command: "ADD", .. } if plugin == "bridge"), "{err}");
    env.assert_gone("tf", None);
    assert!(env.net().recorded_tasks().unwrap().is_empty());
    // The port was given back.
    sh("ip", &["link", "delete", &env.cfg.bridge]);
    let ok = env.net().setup_task("tf", Mode::Bridge, &[tcp(80, Some(port))]).await.unwrap();
    assert_eq!(ok.bindings[0].host_port, port);
    env.net().teardown_task("tf").await.unwrap();
    env.assert_gone("tf", ok.ipv4.as_deref());
}

#[tokio::test]
async fn concurrent_setups_get_distinct_ports_and_addresses() {
    if !runnable() {
        return;
    }
    let env = Env::new('c');
    let net = env.net();
    let ports = [tcp(80, None), udp(53, None)];
    let (c0, c1, c2, c3, again) = tokio::join!(
        net.setup_task("c0", Mode::Bridge, &ports),
        net.setup_task("c1", Mode::Bridge, &ports),
        net.setup_task("c2", Mode::Awsvpc, &[]),
        net.setup_task("c3", Mode::Bridge, &ports),
        net.setup_task("c3", Mode::Bridge, &ports),
    );
    assert!(matches!(again, Err(NetworkError::TaskBusy(_))), "{again:?}");
    let all = [c0.unwrap(), c1.unwrap(), c2.unwrap(), c3.unwrap()];
    let addresses: HashSet<_> = all.iter().map(|t| t.ipv4.clone().unwrap()).collect();
    assert_eq!(addresses.len(), 4);
    let bound: HashSet<_> = all.iter().flat_map(|t| t.bindings.iter().map(|b| (b.protocol, b.host_port))).collect();
    assert_eq!(bound.len(), 6);
    let (d0, d1, d2, d3) = tokio::join!(
        net.teardown_task("c0"),
        net.teardown_task("c1"),
        net.teardown_task("c2"),
        net.teardown_task("c3"),
    );
    for (task, (done, network)) in ["c0", "c1", "c2", "c3"].into_iter().zip([d0, d1, d2, d3].into_iter().zip(&all)) {
        done.unwrap();
        env.assert_gone(task, network.ipv4.as_deref());
    }
}

/// Setup and teardown time per task. Run with
/// `cargo test -p berth-runtime network::e2e_tests::timing -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement; prints figures"]
async fn timing() {
    if !runnable() {
        return;
    }
    let env = Env::new('t');
    const TASKS: usize = 20;
    for (mode, ports) in [
        (Mode::Bridge, vec![tcp(80, None)]),
        (Mode::Bridge, vec![]),
        (Mode::Awsvpc, vec![]),
        (Mode::None, vec![]),
        (Mode::Host, vec![]),
    ] {
        let (mut up, mut down) = (Vec::new(), Vec::new());
        for i in 0..TASKS {
            let task = format!("time{i}");
            let started = Instant::now();
            env.net().setup_task(&task, mode, &ports).await.unwrap();
            up.push(started.elapsed());
            let started = Instant::now();
            env.net().teardown_task(&task).await.unwrap();
            down.push(started.elapsed());
        }
        let stats = |v: &mut Vec<Duration>| {
            v.sort();
            format!(
                "median {:>6.1} ms, max {:>6.1} ms",
                v[v.len() / 2].as_secs_f64() * 1e3,
                v[v.len() - 1].as_secs_f64() * 1e3
            )
        };
        println!(
            "{mode:<6} ports={}: setup {}; teardown {}  ({TASKS} tasks, one after another)",
            ports.len(),
            stats(&mut up),
            stats(&mut down)
        );
    }
}
