"""Log throughput, on a real container: one container writes LINES lines of ~100 bytes to
stdout as fast as it can, the agent ships them (awslogs), and the bench polls GetLogEvents
until the last line is readable.

Prints, for `mode: non-blocking` and `mode: blocking`:
- how long the container took to write everything (its first to last line's timestamp):
  shipping must not slow it down;
- lines/s and MB/s stored, from the first line written to the last line readable (target
  >= 50,000 lines/s), and how many lines were stored: in non-blocking mode a writer faster
  than the shipper overruns the spool (two log files of 10 MiB) and lines are lost; in
  blocking mode the writer is held back instead;
- the agent's CPU time (user + system, from /proc) per MB shipped.

Run it through `scripts/bench-logs` (release build, root)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "compat"))

from berthlib import NO_RETRY, BerthServer, berth_binary, profile_client, uid  # noqa: E402
from fleet import Agent, Registry, build_rootfs, subnet, wait_registered  # noqa: E402

LINES = int(os.environ.get("BENCH_LINES", "500000"))
# A 100-byte line (99 characters and the newline), numbered so that nothing can be merged.
SCRIPT = ('pad=$(printf "%0090d" 0); '
          f'seq 1 {LINES} | sed "s/$/ $pad/" ; echo END')
TARGET_LINES_PER_S = 50_000


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_once(ecs, logs, cluster: str, image: str, agent: Agent, mode: str) -> dict:
    group, family = f"/bench/{uid('logs')}", uid("bench-logs")
    ecs.register_task_definition(family=family, containerDefinitions=[{
        "name": "writer", "image": image, "memory": 128, "command": ["sh", "-c", SCRIPT],
        "logConfiguration": {"logDriver": "awslogs", "options": {
            "awslogs-group": group, "awslogs-region": "us-east-1", "awslogs-stream-prefix": "bench",
            "awslogs-create-group": "true", "mode": mode, "max-buffer-size": "4m"}}}])
    cpu_before = cpu_seconds(agent.proc.pid)
    arn = ecs.run_task(cluster=cluster, taskDefinition=family)["tasks"][0]["taskArn"]
    stream = f"bench/writer/{arn.rsplit('/', 1)[1]}"
    deadline = time.time() + 300
    while True:
        if time.time() > deadline:
            raise RuntimeError(f"the last line was not readable within 300 s ({mode})")
        try:
            last = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=1)["events"]
        except logs.exceptions.ResourceNotFoundException:
            last = []
        if last and last[-1]["message"] == "END":
            readable_at = time.time() * 1000
            break
        time.sleep(0.05)
    cpu = cpu_seconds(agent.proc.pid) - cpu_before
    first = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True, limit=1)["events"][0]
    end = last[-1]
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert [s["logStreamName"] for s in streams] == [stream]
    stored = count_events(logs, group, stream)
    megabytes = stored * 100 / 1e6
    seconds = (readable_at - first["timestamp"]) / 1000
    return {
        "mode": mode,
        "write_s": (end["timestamp"] - first["timestamp"]) / 1000,
        "ship_s": seconds,
        "lines_per_s": stored / seconds,
        "mb_per_s": megabytes / seconds,
        "cpu_ms_per_mb": cpu * 1000 / megabytes,
        "stored": stored,
    }


def count_events(logs, group: str, stream: str) -> int:
    """Every event of the stream, paging forward: the figures count only if none is lost."""
    n, token = 0, None
    while True:
        kw = {"nextToken": token} if token else {"startFromHead": True}
        page = logs.get_log_events(logGroupName=group, logStreamName=stream, **kw)
        n += len(page["events"])
        if page["nextForwardToken"] == token:
            return n
        token = page["nextForwardToken"]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="berth-bench-logs-"))
    os.environ["AWS_CONFIG_FILE"] = str(work / "aws-config")
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(work / "aws-credentials")
    server = BerthServer(berth_binary(), work / "data", env=os.environ.copy(), log_path=work / "server.log").start()
    registry = Registry(work)
    image = registry.push_rootfs(build_rootfs(work / "rootfs"), "busybox:bench-logs")
    ecs = profile_client()
    logs = boto3.Session(profile_name="berth").client("logs", config=Config(retries=NO_RETRY))
    cluster = uid("bench-logs")
    ecs.create_cluster(clusterName=cluster)
    agent = Agent(server, cluster, work, "g", subnet(32), "local-1a").start()
    try:
        wait_registered(ecs, cluster, [agent])
        rows = [run_once(ecs, logs, cluster, image, agent, mode) for mode in ("non-blocking", "blocking")]
        print(f"berth log throughput bench: {LINES} lines of 100 bytes from one container; "
              f"load average {os.getloadavg()[0]:.2f} at end")
        print(f"{'mode':14} {'write_s':>8} {'ship_s':>8} {'lines/s':>9} {'MB/s':>6} {'agent_cpu_ms/MB':>16} "
              f"{'stored':>8}  target")
        for r in rows:
            complete = r["stored"] == LINES + 1
            ok = "yes" if r["lines_per_s"] >= TARGET_LINES_PER_S and complete else "NO"
            print(f"{r['mode']:14} {r['write_s']:8.2f} {r['ship_s']:8.2f} {r['lines_per_s']:9.0f} "
                  f"{r['mb_per_s']:6.2f} {r['cpu_ms_per_mb']:16.1f} {r['stored']:8}  "
                  f">= {TARGET_LINES_PER_S} lines/s, none lost: {ok}")
    finally:
        agent.stop()
        registry.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
