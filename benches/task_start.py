"""Task start latency and agent footprint, on real containers.

Prints, from one run on one machine:
- RunTask of a cached busybox image until DescribeTasks says RUNNING, median of N, for
  networkMode none (the same namespaces a bare `runc run` gets) and bridge (plus CNI), on an
  agent with ECS_IMAGE_PULL_BEHAVIOR prefer-cached, and for none on one with the default
  behaviour (which asks the registry for the tag's manifest first);
- a bare `runc run -d` of an equivalent bundle (same rootfs, same command), median of N;
- the ratio (target <= 1.5), and the idle RSS of a standalone `berth agent` (target <= 20 MB);
- Fargate: RunTask with launchType FARGATE on the server's managed capacity (awsvpc, its own
  cgroup, default pull behaviour) until RUNNING, beside EC2 mode's awsvpc on the default agent;
  and what the Fargate tasks' ephemeral storage set-up (sparse file, mkfs.ext4, loop mount)
  took, median, as the agent logged it.

The samples are interleaved (one bare run, then one task of each kind, N times), so that
the load of other work on the machine weighs on both sides alike.

When a task became RUNNING is read from the server, not from the poll that first sees it:
the task's `startedAt` is the server's clock at the moment it applied the RUNNING report
(same host, same clock as the client's `time.time()` before RunTask is sent). The poller
that waits for RUNNING asks every 20 ms, with one request signed once and re-sent on a
keep-alive connection. Polling every 2 ms instead (a client and a server answer per poll)
took a third of a core from the very start being timed on these 2 cores, and added ~25 ms
to it; the bare side has no observer. The time the poll first saw RUNNING is printed too
(it adds up to one poll interval). The stamp precedes the store's write of that change
(a fsynced SQLite commit, 1-3 ms here), which the poll's figure includes.

RunTask, DescribeTasks and StopTask go out as raw JSON signed with botocore's SigV4 on one
keep-alive connection, not through boto3, whose request building and answer parsing cost
2-4 ms of CPU per call beside the start being timed (RunTask's signing is timed).

Run it through `scripts/bench-task-start` (release build, root)."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "compat"))

from berthlib import BerthServer, berth_binary, profile_client, uid  # noqa: E402
from fleet import NET_SLOT, Agent, Registry, build_rootfs, subnet, wait_registered  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "20"))


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


class LeanEcs:
    """ECS calls signed with botocore's SigV4 and sent as raw JSON on one keep-alive
    connection. boto3 spends 2-4 ms of CPU building a request and parsing its answer;
    on 2 cores that was taken from the very start being timed. The server still verifies
    and answers each call in full."""

    def __init__(self, ecs):
        self.url = ecs.meta.endpoint_url
        self.signer = SigV4Auth(ecs._request_signer._credentials.get_frozen_credentials(), "ecs", ecs.meta.region_name)
        self.conn = http.client.HTTPConnection(urlsplit(self.url).netloc)

    def sign(self, operation: str, payload: dict) -> tuple[bytes, dict]:
        """A signed request, which the server accepts again for 15 minutes."""
        body = json.dumps(payload).encode()
        req = AWSRequest(method="POST", url=self.url, data=body, headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"AmazonEC2ContainerServiceV20141113.{operation}"})
        self.signer.add_auth(req)
        return body, dict(req.headers.items())

    def send(self, signed: tuple[bytes, dict]) -> dict:
        body, headers = signed
        self.conn.request("POST", "/", body=body, headers=headers)
        answer = self.conn.getresponse()
        data = json.loads(answer.read())
        if answer.status != 200:
            raise RuntimeError(f"{headers['X-Amz-Target']}: HTTP {answer.status}: {data}")
        return data

    def call(self, operation: str, payload: dict) -> dict:
        return self.send(self.sign(operation, payload))


POLL_S = 0.02


@dataclass
class Start:
    """One RunTask: when the server recorded RUNNING, and when the poller first saw it,
    both in seconds from just before RunTask was sent."""

    recorded: float
    seen: float


def time_run_task(ecs: LeanEcs, cluster: str, family: str, **launch) -> Start:
    """RunTask until RUNNING; then the task is stopped and awaited, so that no teardown
    overlaps the next start (as the bare runc measure deletes its container each time)."""
    sent, began = time.time(), time.perf_counter()
    arn = ecs.call("RunTask", {"cluster": cluster, "taskDefinition": family, **launch})["tasks"][0]["taskArn"]
    describe = ecs.sign("DescribeTasks", {"cluster": cluster, "tasks": [arn]})
    start = None
    while True:
        task = ecs.send(describe)["tasks"][0]
        if task["lastStatus"] == "RUNNING" and start is None:
            start = Start(recorded=task["startedAt"] - sent, seen=time.perf_counter() - began)
            if not 0 < start.recorded <= start.seen + 0.002:
                raise RuntimeError(f"startedAt {task['startedAt']} is not between RunTask and the poll: {start}")
            ecs.call("StopTask", {"cluster": cluster, "task": arn})
        if task["lastStatus"] == "STOPPED":
            if start is None:
                raise RuntimeError(f"task stopped: {task.get('stoppedReason')}")
            return start
        time.sleep(POLL_S if start is None else 0.05)


def time_bare_runc(rootfs: Path, work: Path) -> float:
    bundle = work / "bundle"
    if not bundle.exists():
        bundle.mkdir()
        subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
        spec = json.loads((bundle / "config.json").read_text())
        spec["root"] = {"path": str(rootfs), "readonly": True}
        spec["process"]["args"] = ["sleep", "600"]
        spec["process"]["terminal"] = False
        spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
        (bundle / "config.json").write_text(json.dumps(spec))
    name = uid("bare")
    began = time.perf_counter()
    subprocess.run(["runc", "run", "-d", "--bundle", str(bundle), name], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - began
    subprocess.run(["runc", "delete", "-f", name], check=True)
    return elapsed


def start_row(label: str, starts: list[Start]) -> tuple[str, float, float]:
    return label, median_ms([s.recorded for s in starts]), median_ms([s.seen for s in starts])


def fargate_rows(ecs, lean: LeanEcs, ec2_cluster: str, image: str) -> list[tuple[str, float, float]]:
    """awsvpc tasks of one size on the EC2 agent (default pull behaviour) and on Fargate."""
    family = uid("start-fargate")
    ecs.register_task_definition(family=family, networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
                                 cpu="256", memory="512", containerDefinitions=[
                                     {"name": "s", "image": image, "command": ["sleep", "600"], "stopTimeout": 1}])
    network = {"awsvpcConfiguration": {"subnets": ["subnet-bench"]}}
    rows = []
    for label, cluster, launch in (("EC2", ec2_cluster, {}), ("FARGATE", ec2_cluster, {"launchType": "FARGATE"})):
        time_run_task(lean, cluster, family, networkConfiguration=network, **launch)
        samples = [time_run_task(lean, cluster, family, networkConfiguration=network, **launch) for _ in range(RUNS)]
        rows.append(start_row(f"RunTask -> RUNNING (awsvpc, {label})", samples))
    return rows


# The agent's line per set-up: `ephemeral storage ready ... elapsed=21.5ms` (ANSI colours between).
STORAGE_RE = re.compile(r"ephemeral storage ready.*?elapsed(?:\x1b\[[0-9;]*m)*=(?:\x1b\[[0-9;]*m)*([\d.]+)(ns|µs|ms|s)\b")
UNIT_MS = {"ns": 1e-6, "µs": 1e-3, "ms": 1.0, "s": 1e3}


def storage_set_up_ms(log: Path) -> float:
    """The median ephemeral storage set-up the server's managed agent logged, in ms."""
    times = [float(v) * UNIT_MS[u] for v, u in STORAGE_RE.findall(log.read_text(errors="replace"))]
    return statistics.median(times) if times else float("nan")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="berth-bench-"))
    os.environ["AWS_CONFIG_FILE"] = str(work / "aws-config")
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(work / "aws-credentials")
    fargate = ["--fargate-capacity", "--fargate-bridge", f"bt{NET_SLOT}z", "--fargate-subnet", subnet(36)]
    server = BerthServer(berth_binary(), work / "data", env=os.environ.copy(), log_path=work / "server.log",
                         args=fargate).start()
    registry = Registry(work)
    rootfs = build_rootfs(work / "rootfs")
    image = registry.push_rootfs(rootfs, "busybox:bench")
    ecs = profile_client()
    lean = LeanEcs(ecs)
    # One agent per image pull behaviour: prefer-cached starts from the cached image, as the
    # benchmark means; default (ECS's) first asks the registry whether the tag moved.
    agents = {}
    for name, net, behavior in (("x", subnet(30), "prefer-cached"), ("y", subnet(31), "default")):
        cluster = uid(f"bench-{behavior}")
        ecs.create_cluster(clusterName=cluster)
        agent = Agent(server, cluster, work, name, net, "local-1a")
        agent.args += ["--pull-behavior", behavior]
        agents[behavior] = (cluster, agent.start())
    try:
        for cluster, agent in agents.values():
            wait_registered(ecs, cluster, [agent])
        while not (server.data_dir / "fargate" / "instance-arn").exists():
            time.sleep(0.1)
        kinds = []
        for mode, behavior in (("none", "prefer-cached"), ("bridge", "prefer-cached"), ("none", "default")):
            cluster = agents[behavior][0]
            family = uid(f"start-{mode}")
            ecs.register_task_definition(family=family, networkMode=mode, containerDefinitions=[
                {"name": "s", "image": image, "memory": 32, "command": ["sleep", "600"], "stopTimeout": 1}])
            time_run_task(lean, cluster, family)  # pulls and caches the image
            kinds.append((f"RunTask -> RUNNING ({mode}, {behavior})", cluster, family))
        time_bare_runc(rootfs, work)  # writes the bundle
        bare_samples, samples = [], {label: [] for label, _, _ in kinds}
        for _ in range(RUNS):
            bare_samples.append(time_bare_runc(rootfs, work))
            for label, cluster, family in kinds:
                samples[label].append(time_run_task(lean, cluster, family))
        bare = median_ms(bare_samples)
        rows = [start_row(label, samples[label]) for label, _, _ in kinds]
        rows += fargate_rows(ecs, lean, agents["default"][0], image)
        time.sleep(3)
        idle_rss = rss_mib(agents["prefer-cached"][1].proc.pid)
        print(f"berth task start bench: {RUNS} runs each, median; load average {os.getloadavg()[0]:.2f} at end")
        print(f"{'measure':46} {'value':>10}                          {'seen by poll':>12}")
        print(f"{'bare runc run -d (same rootfs, command)':46} {bare:8.1f} ms")
        for label, recorded, seen in rows:
            print(f"{label:46} {recorded:8.1f} ms   ratio {recorded / bare:4.2f} (target <= 1.5) {seen:9.1f} ms")
        print(f"{'ephemeral storage set-up (FARGATE, 20 GiB)':46} {storage_set_up_ms(server.log_path):8.1f} ms")
        print(f"{'agent idle RSS':46} {idle_rss:8.1f} MiB (target <= 20)")
    finally:
        for _, agent in agents.values():
            agent.stop()
        registry.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
