"""The awslogs driver end to end: real containers on a real agent write to stdout and
stderr, the agent ships the lines, and the aws CLI and boto3 read them back, across
SIGKILLs of the server and of the agent."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import boto3
import pytest
from botocore.config import Config

from berthlib import NO_RETRY, uid
from fleet import Agent, Registry, build_rootfs, subnet, wait_registered


def logs_client():
    return boto3.Session(profile_name="berth").client("logs", config=Config(retries=NO_RETRY))


@pytest.fixture(scope="module")
def fleet(berth, ecs, tmp_path_factory):
    work = tmp_path_factory.mktemp("logs-fleet")
    registry = Registry(work)
    image = registry.push_rootfs(build_rootfs(work / "rootfs"), "busybox:logs")
    cluster = uid("logs")
    ecs.create_cluster(clusterName=cluster)
    agent = Agent(berth, cluster, work, "l", subnet(30), "local-1a").start()
    try:
        wait_registered(ecs, cluster, [agent])
        yield {"cluster": cluster, "image": image, "agent": agent}
    finally:
        for t in ecs.list_tasks(cluster=cluster)["taskArns"]:
            ecs.stop_task(cluster=cluster, task=t)
        time.sleep(1)
        agent.stop()
        registry.stop()


def run_logging_task(ecs, fleet, script, group, prefix="app", **options):
    family = uid("logs")
    ecs.register_task_definition(family=family, containerDefinitions=[{
        "name": "main", "image": fleet["image"], "memory": 64, "command": ["sh", "-c", script],
        "logConfiguration": {"logDriver": "awslogs", "options": {
            "awslogs-group": group, "awslogs-region": "us-east-1", "awslogs-stream-prefix": prefix,
            "awslogs-create-group": "true", **options}},
    }])
    out = ecs.run_task(cluster=fleet["cluster"], taskDefinition=family)
    assert out["failures"] == [], out["failures"]
    arn = out["tasks"][0]["taskArn"]
    return arn, f"{prefix}/main/{arn.rsplit('/', 1)[1]}"


def wait_stopped(ecs, fleet, arn, timeout=120):
    ecs.get_waiter("tasks_stopped").wait(cluster=fleet["cluster"], tasks=[arn],
                                         WaiterConfig={"Delay": 1, "MaxAttempts": timeout})


def aws(*args):
    p = subprocess.run(["aws", "--profile", "berth", "--output", "json", *args],
                       capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert p.returncode == 0, f"aws {' '.join(args)} exited {p.returncode}: {p.stderr}"
    return json.loads(p.stdout)


def read_stream_with_cli(group, stream):
    """Every event through `aws logs get-log-events`, following forward tokens to the end."""
    messages, token = [], None
    while True:
        args = ["logs", "get-log-events", "--log-group-name", group, "--log-stream-name", stream, "--start-from-head"]
        page = aws(*args, *(["--next-token", token] if token else []))
        messages += [e["message"] for e in page["events"]]
        if page["nextForwardToken"] == token:
            return messages
        token = page["nextForwardToken"]


def wait_for_count(logs, group, stream, n, timeout=60):
    deadline = time.time() + timeout
    got = []
    while time.time() < deadline:
        got = read_stream(logs, group, stream)
        if len(got) >= n:
            return got
        time.sleep(0.5)
    return got


def read_stream(logs, group, stream):
    messages, token = [], None
    while True:
        kw = {"nextToken": token} if token else {"startFromHead": True}
        try:
            page = logs.get_log_events(logGroupName=group, logStreamName=stream, **kw)
        except logs.exceptions.ResourceNotFoundException:
            return messages
        messages += [e["message"] for e in page["events"]]
        if page["nextForwardToken"] == token:
            return messages
        token = page["nextForwardToken"]


def assert_exactly_once_in_order(messages, tag, n):
    mine = [m for m in messages if m.startswith(f"{tag} ")]
    want = [f"{tag} {i}" for i in range(1, n + 1)]
    if mine != want:
        seen = set()
        dups = [m for m in mine if m in seen or seen.add(m)]
        missing = sorted(set(want) - set(mine), key=lambda m: int(m.split()[1]))
        raise AssertionError(f"{tag}: {len(mine)} lines, {len(dups)} duplicated (e.g. {dups[:3]}), "
                             f"{len(missing)} missing (e.g. {missing[:3]}), in order: {mine == sorted(mine, key=lambda m: int(m.split()[1]))}")


NUMBERED = 'i=1; while [ $i -le {n} ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done'


def test_ten_thousand_lines_on_stdout_and_stderr_arrive_once_in_order(ecs, fleet):
    group = f"/ecs/{uid('numbered')}"
    arn, stream = run_logging_task(ecs, fleet, NUMBERED.format(n=10_000), group)
    wait_stopped(ecs, fleet, arn)
    streams = aws("logs", "describe-log-streams", "--log-group-name", group)["logStreams"]
    assert [s["logStreamName"] for s in streams] == [stream]
    messages = read_stream_with_cli(group, stream)
    assert len(messages) == 20_000, len(messages)
    assert_exactly_once_in_order(messages, "out", 10_000)
    assert_exactly_once_in_order(messages, "err", 10_000)
    # A stopped task's output stays readable, and a filter pattern finds the right lines.
    out = aws("logs", "filter-log-events", "--log-group-name", group, "--filter-pattern", '"err 9999"')
    assert [e["message"] for e in out["events"]] == ["err 9999"]


def test_a_follower_sees_a_running_task_s_lines_within_two_seconds(ecs, fleet):
    group = f"/ecs/{uid('follow')}"
    script = 'i=0; while [ $i -lt 12 ]; do echo "tick $i"; i=$((i+1)); sleep 0.5; done'
    arn, _ = run_logging_task(ecs, fleet, script, group)
    logs, seen, stop = logs_client(), [], threading.Event()

    def follow():
        # What `aws logs tail --follow` does: poll FilterLogEvents from the newest timestamp seen.
        start, ids = int(time.time() * 1000) - 60_000, set()
        while not stop.is_set():
            try:
                pages = list(logs.get_paginator("filter_log_events").paginate(logGroupName=group, startTime=start))
            except logs.exceptions.ResourceNotFoundException:
                pages = []
            for e in (e for p in pages for e in p["events"]):
                if e["eventId"] not in ids:
                    ids.add(e["eventId"])
                    seen.append((time.time() * 1000 - e["timestamp"], e["message"]))
                    start = max(start, e["timestamp"])
            time.sleep(0.2)

    th = threading.Thread(target=follow, daemon=True)
    th.start()
    try:
        wait_stopped(ecs, fleet, arn)
        time.sleep(1)
    finally:
        stop.set()
        th.join(5)
    assert [m for _, m in seen] == [f"tick {i}" for i in range(12)]
    late = [(m, round(lag)) for lag, m in seen[1:] if lag > 2000]
    assert not late, f"lines that took over 2 s from the container to the follower: {late}"


SLOW = 'i=1; while [ $i -le {n} ]; do echo "out $i"; i=$((i+1)); [ $((i % 500)) = 0 ] && sleep 0.1; done; exit 0'


def test_no_line_is_lost_or_repeated_when_the_server_is_sigkilled(ecs, fleet, berth):
    group = f"/ecs/{uid('srvkill')}"
    arn, stream = run_logging_task(ecs, fleet, SLOW.format(n=20_000), group)
    logs = logs_client()
    assert wait_for_count(logs, group, stream, 1, timeout=30), "no line arrived before the kill"
    berth.restart(hard=True)
    time.sleep(0.5)
    berth.restart(hard=True)
    wait_stopped(ecs, fleet, arn)
    assert_exactly_once_in_order(wait_for_count(logs_client(), group, stream, 20_000), "out", 20_000)


def test_no_line_is_lost_or_repeated_when_the_agent_is_sigkilled(ecs, fleet):
    group = f"/ecs/{uid('agentkill')}"
    arn, stream = run_logging_task(ecs, fleet, SLOW.format(n=20_000), group)
    logs = logs_client()
    assert wait_for_count(logs, group, stream, 1, timeout=30), "no line arrived before the kill"
    fleet["agent"].kill()
    time.sleep(1)
    fleet["agent"].start()
    wait_stopped(ecs, fleet, arn)
    assert_exactly_once_in_order(wait_for_count(logs, group, stream, 20_000), "out", 20_000)


def test_blocking_mode_holds_a_fast_writer_back_instead_of_losing_lines(ecs, fleet):
    # 250,000 lines of 100 bytes: more than the spool of two 10 MiB files, faster than shipping.
    group = f"/ecs/{uid('blocking')}"
    script = 'pad=$(printf "%0090d" 0); seq 1 250000 | sed "s/^/out /; s/$/ $pad/"'
    arn, stream = run_logging_task(ecs, fleet, script, group, mode="blocking")
    wait_stopped(ecs, fleet, arn, timeout=180)
    messages = [m.rsplit(" ", 1)[0] for m in read_stream(logs_client(), group, stream)]
    assert_exactly_once_in_order(messages, "out", 250_000)


def berth_logs(berth, fleet, task, *args, timeout=60):
    cmd = [str(berth.binary), "logs", task, "--cluster", fleet["cluster"],
           "--credentials", str(berth.data_dir / "admin-credentials.json"),
           "--agent-data-dir", str(fleet["agent"].data_dir), *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"berth logs exited {p.returncode}: {p.stderr}"
    return p.stdout.splitlines()


def test_berth_logs_prints_and_follows_a_task_s_output(ecs, fleet, berth):
    group = f"/ecs/{uid('cli')}"
    script = 'i=1; while [ $i -le 30 ]; do echo "out $i"; i=$((i+1)); sleep 0.1; done'
    arn, _ = run_logging_task(ecs, fleet, script, group)
    followed = berth_logs(berth, fleet, arn, "--follow")
    assert followed == [f"out {i}" for i in range(1, 31)]
    assert berth_logs(berth, fleet, arn.rsplit("/", 1)[1], "--container", "main") == followed


def test_berth_logs_reads_a_container_without_log_configuration_on_its_host(ecs, fleet, berth):
    family = uid("hostlog")
    ecs.register_task_definition(family=family, containerDefinitions=[{
        "name": "plain", "image": fleet["image"], "memory": 64,
        "command": ["sh", "-c", "echo to-stdout; echo to-stderr >&2; sleep 60"], "stopTimeout": 1}])
    [task] = ecs.run_task(cluster=fleet["cluster"], taskDefinition=family)["tasks"]
    ecs.get_waiter("tasks_running").wait(cluster=fleet["cluster"], tasks=[task["taskArn"]],
                                         WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    deadline, lines = time.time() + 10, []
    while time.time() < deadline and len(lines) < 2:
        lines = berth_logs(berth, fleet, task["taskArn"])
        time.sleep(0.2)
    assert sorted(lines) == ["to-stderr", "to-stdout"]
    ecs.stop_task(cluster=fleet["cluster"], task=task["taskArn"])
