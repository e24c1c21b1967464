"""Helpers shared by the berth compatibility suite.

Everything here drives berth the way a user would: the `berth server` binary,
the AWS CLI profile it writes, boto3, and raw SigV4-signed HTTP requests.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from unittest import mock

import boto3
import botocore.auth
import requests
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

REPO = Path(__file__).resolve().parent.parent
TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113"
REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"
LISTEN_RE = re.compile(r"berth: listening on (http://127\.0\.0\.1:(\d+))")

# botocore must never retry: a retried 5xx or throttle would hide the very
# behaviour under test.
NO_RETRY = {"total_max_attempts": 1, "mode": "standard"}


def berth_binary() -> Path:
    env = os.environ.get("BERTH_BIN")
    return Path(env) if env else REPO / "target" / "debug" / "berth"


def uid(prefix: str = "t") -> str:
    """A short unique name usable as a cluster name or task definition family."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class BerthServer:
    """One `berth server` process on one data directory.

    `start()` launches it (the first time on 127.0.0.1:0, afterwards on the same
    port so the endpoint written into the CLI profile stays valid), `stop()`
    sends SIGTERM, `kill()` sends SIGKILL, `restart()` is stop()+start().
    """

    def __init__(self, binary: Path, data_dir: Path, env: dict | None = None, log_path: Path | None = None,
                 args: list[str] | None = None):
        self.binary = Path(binary)
        self.args = list(args or [])
        self.data_dir = Path(data_dir)
        self.env = dict(env if env is not None else os.environ)
        self.log_path = Path(log_path) if log_path else self.data_dir.parent / f"{self.data_dir.name}.log"
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.endpoint: str | None = None
        self.starts = 0

    # -- process control -------------------------------------------------
    def start(self, timeout: float = 30.0) -> "BerthServer":
        if not self.binary.exists():
            raise RuntimeError(
                f"berth binary not found at {self.binary} (build it with `cargo build` "
                "or point BERTH_BIN at it); the compatibility suite cannot run without it"
            )
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        listen = f"127.0.0.1:{self.port if self.port else 0}"
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"\n===== start #{self.starts}: --listen {listen} =====\n".encode())
        log.flush()
        mark = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            [str(self.binary), "server", "--data-dir", str(self.data_dir), "--listen", listen, *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(mark)
                text = f.read().decode("utf-8", "replace")
            m = LISTEN_RE.search(text)
            if m:
                self.endpoint = m.group(1)
                port = int(m.group(2))
                if self.port is not None and port != self.port:
                    raise RuntimeError(f"restarted server listens on {port}, asked for {self.port}")
                self.port = port
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"berth server exited with {self.proc.returncode} before it was ready; log:\n{self.log_tail()}"
                )
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"berth server did not print its listening line within {timeout}s; log:\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: no chance to flush or clean up."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def restart(self, hard: bool = False) -> "BerthServer":
        self.kill() if hard else self.stop()
        return self.start()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "<no log>"

    # -- credentials and clients -----------------------------------------
    @property
    def admin(self) -> dict:
        return json.loads((self.data_dir / "admin-credentials.json").read_text())

    @property
    def account(self) -> str:
        return self.admin.get("accountId", DEFAULT_ACCOUNT)

    def credentials(self) -> Credentials:
        a = self.admin
        return Credentials(a["accessKeyId"], a["secretAccessKey"])

    def client(self, validate: bool = True, **config):
        """A boto3 ECS client built from admin-credentials.json with an explicit endpoint
        (for servers that do not own the session's CLI profile)."""
        a = self.admin
        cfg = Config(retries=NO_RETRY, parameter_validation=validate, **config)
        return boto3.session.Session().client(
            "ecs",
            region_name=a.get("region", REGION),
            endpoint_url=self.endpoint,
            aws_access_key_id=a["accessKeyId"],
            aws_secret_access_key=a["secretAccessKey"],
            config=cfg,
        )

    def cluster_arn(self, name: str) -> str:
        return f"arn:aws:ecs:{REGION}:{self.account}:cluster/{name}"

    def td_arn(self, family: str, rev: int) -> str:
        return f"arn:aws:ecs:{REGION}:{self.account}:task-definition/{family}:{rev}"


def profile_client(validate: bool = True, **config):
    """The client every user gets: the `berth` profile, no endpoint flags."""
    cfg = Config(retries=NO_RETRY, parameter_validation=validate, **config)
    return boto3.Session(profile_name="berth").client("ecs", config=cfg)


# -- raw HTTP ----------------------------------------------------------------

def sign(url: str, body: bytes, headers: dict, creds: Credentials, region: str = REGION,
         when: datetime.datetime | None = None, service: str = "ecs") -> dict:
    """SigV4-sign a POST with botocore's own signer and return the headers to send."""
    req = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    signer = botocore.auth.SigV4Auth(creds, service, region)
    if when is not None:
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            signer.add_auth(req)
    else:
        signer.add_auth(req)
    return dict(req.headers.items())


def raw_call(server: BerthServer, op: str | None, body, *, creds: Credentials | None = None,
             signed: bool = True, when: datetime.datetime | None = None,
             target: str | None = None, content_type: str = "application/x-amz-json-1.1",
             region: str = REGION, service: str = "ecs", extra_headers: dict | None = None,
             timeout: float = 30.0) -> requests.Response:
    """POST one request to the server. `body` may be a dict (JSON-encoded) or raw bytes."""
    url = server.endpoint + "/"
    data = body if isinstance(body, (bytes, bytearray)) else json.dumps(body).encode()
    headers = {"Content-Type": content_type}
    if target is not None:
        headers["X-Amz-Target"] = target
    elif op is not None:
        headers["X-Amz-Target"] = f"{TARGET_PREFIX}.{op}"
    if signed:
        headers = sign(url, data, headers, creds or server.credentials(), when=when, region=region, service=service)
    headers.update(extra_headers or {})
    return requests.post(url, data=data, headers=headers, timeout=timeout)


def error_type(raw: str) -> str:
    """`com.amazon.coral.service#SerializationException` -> `SerializationException`;
    `ClientException:http://...` (x-amzn-ErrorType) -> `ClientException`."""
    return raw.split(":", 1)[0].split("#")[-1]


def assert_raw_error(resp: requests.Response, status: int, etype: str, *contains: str, ci: bool = True) -> dict:
    assert resp.status_code == status, f"expected HTTP {status}, got {resp.status_code}: {resp.text[:500]}"
    assert resp.headers.get("x-amzn-RequestId"), f"no x-amzn-RequestId header: {dict(resp.headers)}"
    hdr = resp.headers.get("x-amzn-ErrorType")
    assert hdr, f"no x-amzn-ErrorType header: {dict(resp.headers)}"
    assert error_type(hdr) == etype, f"x-amzn-ErrorType {hdr!r}, expected {etype}"
    assert resp.headers.get("Content-Type", "").startswith("application/x-amz-json-1.1"), resp.headers.get("Content-Type")
    body = resp.json()
    assert "__type" in body, body
    assert error_type(body["__type"]) == etype, f"__type {body['__type']!r}, expected {etype}"
    msg = body.get("message", body.get("Message"))
    assert isinstance(msg, str) and msg, f"error without a message: {body}"
    for c in contains:
        hay, needle = (msg.lower(), c.lower()) if ci else (msg, c)
        assert needle in hay, f"message {msg!r} does not mention {c!r}"
    return body


# -- boto3 errors ------------------------------------------------------------

def expect_error(fn, types, *contains: str, ci: bool = True, status: int = 400) -> ClientError:
    """Call fn() and require a ClientError of one of `types` (str or tuple), HTTP `status`,
    and a message containing each of `contains`."""
    if isinstance(types, str):
        types = (types,)
    try:
        result = fn()
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code")
        msg = e.response.get("Error", {}).get("Message") or ""
        http = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        assert code in types, f"expected one of {types}, got {code}: {msg!r} (HTTP {http})"
        assert http == status, f"expected HTTP {status}, got {http} for {code}: {msg!r}"
        for c in contains:
            hay, needle = (msg.lower(), c.lower()) if ci else (msg, c)
            assert needle in hay, f"{code} message {msg!r} does not mention {c!r}"
        return e
    raise AssertionError(f"expected {types}, but the call succeeded: {str(result)[:600]}")


def assert_subset(expected, actual, path: str = "$") -> None:
    """Every member of `expected` round-trips into `actual` (which may add defaults)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        for k, v in expected.items():
            assert k in actual, f"{path}.{k} missing from response (has {sorted(actual)})"
            assert_subset(v, actual[k], f"{path}.{k}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected a list, got {actual!r}"
        assert len(expected) == len(actual), f"{path}: {len(expected)} items sent, {len(actual)} returned: {actual!r}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            assert_subset(e, a, f"{path}[{i}]")
    else:
        assert expected == actual, f"{path}: sent {expected!r}, got back {actual!r}"


def container(name: str, **kw) -> dict:
    """A minimal valid EC2 container definition."""
    c = {"name": name, "image": "registry.local:5000/busybox:1.36", "memory": 128}
    c.update(kw)
    return c


def wait_for(fn, timeout: float = 20.0, what: str = "condition", every: float = 0.1):
    """Polls fn() until it answers something truthy, and answers that."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
