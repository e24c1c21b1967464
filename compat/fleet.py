"""A real fleet for end-to-end tests: a `docker-registry` on loopback with busybox images
pushed into it, and `berth agent` processes (each its own data dir and bridge) joined to a
cluster of the session's server. Containers run for real, through runc."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

from berthlib import BerthServer, berth_binary, free_port

BUSYBOX = Path("/bin/busybox")

# Runs of the suite on one host at the same time (several work trees) keep their bridges and
# subnets apart by giving each a different BERTH_TEST_NET (0-9).
NET_SLOT = int(os.environ.get("BERTH_TEST_NET", "0"))


def subnet(n: int) -> str:
    """The test subnet `n` of this run's slot, e.g. 10.213.20.0/24 for n=20 in slot 0."""
    return f"10.{213 + NET_SLOT}.{n}.0/24"


def build_rootfs(root: Path) -> Path:
    """A busybox rootfs: every applet linked into /bin, a web root, passwd and group."""
    (root / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([str(BUSYBOX), "--list"], check=True, capture_output=True, text=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    for d in ("etc", "tmp", "www", "data"):
        (root / d).mkdir(exist_ok=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (root / "www" / "index.html").write_text("hello-from-berth\n")
    return root


class TokenServer:
    """A registry token service (Docker's bearer-token auth) on a free loopback port, the twin
    of berth_runtime's `images::testing::TokenServer`: `username`/`password` get RS256 JWTs
    granting the pull and push they ask for, signed by the `openssl` CLI under a self-signed
    certificate carried in the `x5c` header (the registry's `rootcertbundle`); anonymous
    requests get a token that grants nothing; wrong credentials get 401."""

    SERVICE = "berth-test-registry"
    ISSUER = "berth-test-token-server"

    def __init__(self, workdir: Path, username: str, password: str, ttl: int = 300):
        import http.server
        import threading

        self.key, self.cert = workdir / "token.key", workdir / "token.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=berth-test-token", "-keyout", str(self.key), "-out", str(self.cert)],
                       check=True, capture_output=True)
        self.x5c = "".join(l for l in self.cert.read_text().splitlines() if not l.startswith("-----"))
        self.basic = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.username, self.ttl = username, ttl
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                status, body = server.answer(self.path, self.headers.get("Authorization"))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict]:
        from urllib.parse import parse_qs, urlsplit

        url = urlsplit(path)
        if url.path != "/token":
            return 404, {"details": "no such path"}
        if authorization is not None and authorization != self.basic:
            return 401, {"details": "authentication failed: incorrect username or password"}
        access = []
        for scope in (s for v in parse_qs(url.query).get("scope", []) for s in v.split()):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if authorization is not None and kind == "repository":
                access.append({"type": "repository", "name": name,
                               "actions": [a for a in actions.split(",") if a in ("pull", "push")]})
        token = self.sign(self.username if authorization else "", access)
        return 200, {"token": token, "access_token": token, "expires_in": self.ttl}

    def sign(self, subject: str, access: list[dict]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": self.ISSUER, "sub": subject, "aud": self.SERVICE, "exp": now + self.ttl,
                  "nbf": now - 5, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                                   input=signing_input.encode(), check=True, capture_output=True).stdout
        return f"{signing_input}.{_b64url(signature)}"

    def registry_config(self) -> str:
        return (f"auth:\n  token:\n    realm: {self.realm}\n    service: {self.SERVICE}\n"
                f"    issuer: {self.ISSUER}\n    rootcertbundle: {self.cert}\n")

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class Registry:
    """Debian's docker-registry (Docker distribution) serving on a free loopback port;
    anonymous, or with `token_auth=(user, password)` behind a `TokenServer`."""

    def __init__(self, workdir: Path, token_auth: tuple[str, str] | None = None):
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        storage = workdir / "registry"
        storage.mkdir(parents=True)
        self.auth = token_auth
        self.tokens = TokenServer(workdir, *token_auth) if token_auth else None
        config = workdir / "registry.yml"
        config.write_text(
            f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n"
            f"http:\n  addr: {self.host}\n" + (self.tokens.registry_config() if self.tokens else "")
        )
        self.log = open(workdir / "registry.log", "wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=self.log, stderr=self.log)
        _wait_port(self.port, "docker-registry")

    def push_rootfs(self, rootfs: Path, name: str, cmd: list[str] | None = None, by_digest: bool = False) -> str:
        """Pushes `rootfs` as `name` (with the registry's credentials, if any); returns the
        reference by tag, or by the manifest's digest."""
        ref = f"{self.host}/{name}"
        args = [str(berth_binary()), "image", "push-rootfs", str(rootfs), ref, "--env", "PATH=/bin"]
        if cmd:
            args += ["--cmd", json.dumps(cmd)]
        if self.auth:
            args += ["--username", self.auth[0], "--password", self.auth[1]]
        digest = subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()
        return f"{ref.rpartition(':')[0]}@{digest}" if by_digest else ref

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()
        if self.tokens:
            self.tokens.stop()


class Agent:
    """One `berth agent` process."""

    def __init__(self, server: BerthServer, cluster: str, workdir: Path, name: str, subnet: str,
                 zone: str, attributes: str = "", registry_auth: str = ""):
        self.server, self.cluster, self.name = server, cluster, name
        self.data_dir = workdir / f"agent-{name}"
        self.log_path = workdir / f"agent-{name}.log"
        self.args = [
            str(berth_binary()), "agent", "--server", server.endpoint, "--cluster", cluster,
            "--data-dir", str(self.data_dir), "--credentials", str(server.data_dir / "admin-credentials.json"),
            "--bridge", f"bt{NET_SLOT}{name}", "--subnet", subnet, "--availability-zone", zone,
        ]
        if attributes:
            self.args += ["--attributes", attributes]
        if registry_auth:
            self.args += ["--registry-auth", registry_auth]
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Agent":
        log = open(self.log_path, "ab")
        env = dict(os.environ, BERTH_LOG="info")
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=log, env=env, start_new_session=True)
        log.close()
        return self

    def kill(self) -> None:
        """SIGKILL the agent alone (its containers' shims are in their own sessions)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def instance_arn(self) -> str:
        return (self.data_dir / "instance-arn").read_text().strip()

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def shim_pids(container_id: str) -> list[int]:
    """The pids of the shims of `container_id` (their command line names the container)."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
        except OSError:
            continue
        if container_id in cmdline and "shim" in cmdline:
            pids.append(int(pid))
    return pids


def reap(data_dir: Path) -> None:
    """Once an agent is stopped: force-delete the containers it left running (a test that
    ends with tasks still running must not leave them to the next run) and unmount what is
    mounted under its data dir."""
    root = data_dir / "runtime" / "runc"
    if root.exists():
        ids = subprocess.run(["runc", "--root", str(root), "list", "-q"], capture_output=True, text=True).stdout
        for cid in ids.split():
            subprocess.run(["runc", "--root", str(root), "delete", "--force", cid], capture_output=True)
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for mnt in reversed(mounts):
        if mnt.startswith(f"{data_dir}/"):
            subprocess.run(["umount", "-l", mnt], capture_output=True)


def retire(ecs, clusters: list[str], agents: list[Agent], timeout: float = 30.0) -> None:
    """The end of a fleet: every service deleted and every task stopped in `clusters`, waited
    for (bounded) while the agents still run so that they clean up after their tasks; then the
    agents stopped and whatever they left reaped."""
    for cluster in clusters:
        for svc in ecs.list_services(cluster=cluster, maxResults=100)["serviceArns"]:
            ecs.delete_service(cluster=cluster, service=svc, force=True)
        for task in ecs.list_tasks(cluster=cluster)["taskArns"]:
            ecs.stop_task(cluster=cluster, task=task, reason="fleet retired")
    deadline = time.time() + timeout
    while time.time() < deadline and any(_live_tasks(ecs, c) for c in clusters):
        time.sleep(0.5)
    for agent in agents:
        agent.stop()
        reap(agent.data_dir)


def _live_tasks(ecs, cluster: str) -> bool:
    """Whether any task of `cluster` has not reached STOPPED yet (stopping ones included)."""
    arns = []
    for status in ("RUNNING", "STOPPED"):
        arns += ecs.list_tasks(cluster=cluster, desiredStatus=status)["taskArns"]
    for i in range(0, len(arns), 100):
        if any(t["lastStatus"] != "STOPPED" for t in ecs.describe_tasks(cluster=cluster, tasks=arns[i:i + 100])["tasks"]):
            return True
    return False


def wait_registered(ecs, cluster: str, agents: list[Agent], timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all((a.data_dir / "instance-arn").exists() for a in agents):
            arns = set(ecs.list_container_instances(cluster=cluster)["containerInstanceArns"])
            if all(a.instance_arn() in arns for a in agents):
                return
        time.sleep(0.2)
    raise RuntimeError("agents did not register:\n" + "\n".join(a.log_tail() for a in agents))


def _wait_port(port: int, what: str, timeout: float = 15.0) -> None:
    import socket

    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port}")
