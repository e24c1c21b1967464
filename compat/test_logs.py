"""The CloudWatch Logs subset through boto3 and the aws CLI, with the `berth` profile the
server wrote (its `[services berth]` section points `logs` at berth too)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import boto3
import pytest
from botocore.config import Config

from berthlib import NO_RETRY, assert_raw_error, expect_error, raw_call, uid

LOGS = "Logs_20140328"


def logs_client(validate: bool = True, **kw):
    cfg = Config(retries=NO_RETRY, parameter_validation=validate)
    return boto3.Session(profile_name="berth", **kw).client("logs", config=cfg)


@pytest.fixture(scope="module")
def logs(berth):
    return logs_client()


@pytest.fixture(scope="module")
def logs_raw(berth):
    return logs_client(validate=False)


def aws(*args):
    p = subprocess.run(["aws", "--profile", "berth", "--output", "json", *args],
                       capture_output=True, text=True, env=os.environ.copy(), timeout=60)
    assert p.returncode == 0, f"aws {' '.join(args)} exited {p.returncode}: {p.stderr}"
    return json.loads(p.stdout) if p.stdout.strip() else {}


def now_ms() -> int:
    return int(time.time() * 1000)


def put(logs, group, stream, messages, start=None, step=1):
    t0 = now_ms() if start is None else start
    events = [{"timestamp": t0 + i * step, "message": m} for i, m in enumerate(messages)]
    return logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)


@pytest.fixture
def stream(logs):
    group, name = f"/berth/{uid('g')}", f"app/web/{uid('t')}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=name)
    return group, name


def test_groups_lifecycle_and_errors(logs):
    group = f"/ecs/{uid('life')}"
    logs.create_log_group(logGroupName=group)
    expect_error(lambda: logs.create_log_group(logGroupName=group), "ResourceAlreadyExistsException", "already exists")
    [g] = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert g["logGroupName"] == group and g["arn"].endswith(f":log-group:{group}:*")
    assert g["logGroupArn"] == g["arn"][:-2] and g["creationTime"] > now_ms() - 60_000
    assert "retentionInDays" not in g
    found = logs.describe_log_groups(logGroupNamePattern=group.split("/")[-1].upper())["logGroups"]
    assert [x["logGroupName"] for x in found] == [group]
    by_arn = logs.describe_log_groups(logGroupIdentifiers=[g["logGroupArn"]])["logGroups"]
    assert [x["logGroupName"] for x in by_arn] == [group]
    logs.delete_log_group(logGroupName=group)
    assert logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"] == []
    expect_error(lambda: logs.delete_log_group(logGroupName=group), "ResourceNotFoundException", "log group")
    expect_error(lambda: logs.create_log_group(logGroupName="bad:name"), "InvalidParameterException", "logGroupName")


def test_describe_log_groups_pages(logs):
    base = f"/page/{uid('p')}"
    for i in range(5):
        logs.create_log_group(logGroupName=f"{base}/{i}")
    pages = logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=base, PaginationConfig={"PageSize": 2})
    names = [g["logGroupName"] for p in pages for g in p["logGroups"]]
    assert names == [f"{base}/{i}" for i in range(5)]


def test_streams_lifecycle_and_errors(logs, stream):
    group, name = stream
    expect_error(lambda: logs.create_log_stream(logGroupName=group, logStreamName=name),
                 "ResourceAlreadyExistsException", "already exists")
    expect_error(lambda: logs.create_log_stream(logGroupName=f"{group}-none", logStreamName="s"),
                 "ResourceNotFoundException", "log group")
    expect_error(lambda: logs.create_log_stream(logGroupName=group, logStreamName="a:b"),
                 "InvalidParameterException", "logStreamName")
    logs.create_log_stream(logGroupName=group, logStreamName="zz-later")
    put(logs, group, "zz-later", ["x"], start=now_ms() - 5000)
    put(logs, group, name, ["y"])
    [s] = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix="app/")["logStreams"]
    assert s["logStreamName"] == name and s["arn"].endswith(f":log-group:{group}:log-stream:{name}")
    assert s["firstEventTimestamp"] == s["lastEventTimestamp"] and s["lastIngestionTime"] >= s["creationTime"]
    by_time = logs.describe_log_streams(logGroupName=group, orderBy="LastEventTime", descending=True)["logStreams"]
    assert [x["logStreamName"] for x in by_time] == [name, "zz-later"]
    expect_error(lambda: logs.describe_log_streams(logGroupName=group, orderBy="LastEventTime", logStreamNamePrefix="a"),
                 "InvalidParameterException", "LastEventTime")
    expect_error(lambda: logs.describe_log_streams(logGroupName=f"{group}-none"), "ResourceNotFoundException", "log group")


def test_get_log_events_pages_forward_and_backward(logs, stream):
    group, name = stream
    t0 = now_ms() - 10_000
    for b in range(3):
        put(logs, group, name, [f"line {b * 10 + i}" for i in range(10)], start=t0 + b * 10)
    want = [f"line {i}" for i in range(30)]
    # Forward from the head, 7 at a time, until the same token comes back (the end).
    got, token = [], None
    while True:
        kw = {"nextToken": token} if token else {"startFromHead": True}
        page = logs.get_log_events(logGroupName=group, logStreamName=name, limit=7, **kw)
        got += [e["message"] for e in page["events"]]
        if page["nextForwardToken"] == token:
            break
        token = page["nextForwardToken"]
    assert got == want
    # Without startFromHead: the newest page, then backwards.
    page = logs.get_log_events(logGroupName=group, logStreamName=name, limit=12)
    assert [e["message"] for e in page["events"]] == want[18:]
    back = logs.get_log_events(logGroupName=group, logStreamName=name, limit=12, nextToken=page["nextBackwardToken"])
    assert [e["message"] for e in back["events"]] == want[6:18]
    e = page["events"][0]
    assert e["timestamp"] == t0 + 18 and e["ingestionTime"] >= e["timestamp"]
    # A time window: [t0+5, t0+12) holds lines 5..9 and 10..11.
    win = logs.get_log_events(logGroupName=group, logStreamName=name, startTime=t0 + 5, endTime=t0 + 12, startFromHead=True)
    assert [e["message"] for e in win["events"]] == [f"line {i}" for i in range(5, 12)]


def test_events_of_equal_timestamp_keep_put_order(logs, stream):
    group, name = stream
    put(logs, group, name, [f"same {i}" for i in range(50)], step=0)
    got = logs.get_log_events(logGroupName=group, logStreamName=name, startFromHead=True)["events"]
    assert [e["message"] for e in got] == [f"same {i}" for i in range(50)]


def test_put_log_events_rules(logs, logs_raw, stream):
    group, name = stream
    t = now_ms()
    unsorted = [{"timestamp": t, "message": "b"}, {"timestamp": t - 1000, "message": "a"}]
    expect_error(lambda: logs.put_log_events(logGroupName=group, logStreamName=name, logEvents=unsorted),
                 "InvalidParameterException", "chronological")
    expect_error(lambda: put(logs, group, "missing-stream", ["x"]), "ResourceNotFoundException", "log stream")
    expect_error(lambda: put(logs, f"{group}-none", name, ["x"]), "ResourceNotFoundException", "log group")
    big = [{"timestamp": t, "message": "x" * 200_000} for _ in range(6)]
    expect_error(lambda: logs.put_log_events(logGroupName=group, logStreamName=name, logEvents=big),
                 "InvalidParameterException", "1048576")
    expect_error(lambda: logs_raw.put_log_events(logGroupName=group, logStreamName=name),
                 "InvalidParameterException", "logEvents")
    r = put(logs, group, name, ["old"], start=t - 15 * 86_400_000)
    assert r["rejectedLogEventsInfo"] == {"tooOldLogEventEndIndex": 1}
    r = put(logs, group, name, ["now", "future"], start=t, step=3 * 3_600_000)
    assert r["rejectedLogEventsInfo"] == {"tooNewLogEventStartIndex": 1}
    expect_error(lambda: put(logs, group, name, ["a", "b"], start=t - 86_400_000, step=86_400_001),
                 "InvalidParameterException", "24 hours")
    got = logs.get_log_events(logGroupName=group, logStreamName=name, startFromHead=True)["events"]
    assert [e["message"] for e in got] == ["now"]
    expect_error(lambda: logs.get_log_events(logGroupName=group, logStreamName=name, nextToken="f/nonsense"),
                 "InvalidParameterException", "nextToken")
    expect_error(lambda: logs.get_log_events(logGroupName=group, logStreamName="nope"),
                 "ResourceNotFoundException", "log stream")


def test_put_of_ten_thousand_events_is_one_batch(logs, stream):
    group, name = stream
    t = now_ms() - 60_000
    events = [{"timestamp": t + i // 100, "message": f"{i:05d}"} for i in range(10_000)]
    logs.put_log_events(logGroupName=group, logStreamName=name, logEvents=events)
    got = logs.get_log_events(logGroupName=group, logStreamName=name, startFromHead=True)["events"]
    assert [e["message"] for e in got] == [f"{i:05d}" for i in range(10_000)]


def test_retention_is_enforced_on_read(logs, stream):
    group, name = stream
    t = now_ms()
    put(logs, group, name, ["ten days old"], start=t - 10 * 86_400_000)
    put(logs, group, name, ["fresh"], start=t)
    expect_error(lambda: logs.put_retention_policy(logGroupName=group, retentionInDays=2),
                 "InvalidParameterException", "retentionInDays")
    expect_error(lambda: logs.put_retention_policy(logGroupName=f"{group}-none", retentionInDays=7),
                 "ResourceNotFoundException", "log group")
    logs.put_retention_policy(logGroupName=group, retentionInDays=7)
    assert logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]["retentionInDays"] == 7
    got = logs.get_log_events(logGroupName=group, logStreamName=name, startFromHead=True)["events"]
    assert [e["message"] for e in got] == ["fresh"]
    assert [e["message"] for e in logs.filter_log_events(logGroupName=group)["events"]] == ["fresh"]
    r = put(logs, group, name, ["eight days old"], start=t - 8 * 86_400_000)
    assert r["rejectedLogEventsInfo"] == {"expiredLogEventEndIndex": 1}
    logs.delete_retention_policy(logGroupName=group)
    got = logs.get_log_events(logGroupName=group, logStreamName=name, startFromHead=True)["events"]
    assert [e["message"] for e in got] == ["ten days old", "fresh"]


def test_deleted_group_comes_back_empty(logs):
    group = f"/again/{uid('d')}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    put(logs, group, "s", ["before"])
    logs.delete_log_group(logGroupName=group)
    logs.create_log_group(logGroupName=group)
    assert logs.describe_log_streams(logGroupName=group)["logStreams"] == []
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    assert logs.get_log_events(logGroupName=group, logStreamName="s")["events"] == []


@pytest.fixture(scope="module")
def app_group(logs):
    """A group with two streams of mixed plain, JSON and access-log lines, interleaved in time."""
    group = f"/filter/{uid('f')}"
    logs.create_log_group(logGroupName=group)
    t = now_ms() - 100_000
    lines = {
        "web/a": [(0, "INFO started"), (2, '{"level":"error","ms":250}'), (4, "ERROR disk full"),
                  (6, '127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 404 2326')],
        "web/b": [(1, "WARN slow"), (3, '{"level":"info","ms":12}'), (5, "ERROR retrying soon"),
                  (7, '10.0.0.2 - - [10/Oct/2000:13:55:37 -0700] "GET /x HTTP/1.0" 200 12')],
    }
    for s, evs in lines.items():
        logs.create_log_stream(logGroupName=group, logStreamName=s)
        logs.put_log_events(logGroupName=group, logStreamName=s,
                            logEvents=[{"timestamp": t + dt, "message": m} for dt, m in evs])
    return group, t


def filtered(logs, group, **kw):
    pages = logs.get_paginator("filter_log_events").paginate(logGroupName=group, **kw)
    return [(e["logStreamName"], e["message"]) for p in pages for e in p["events"]]


def test_filter_interleaves_streams_in_time(logs, app_group):
    group, t = app_group
    got = filtered(logs, group)
    assert [s for s, _ in got] == ["web/a", "web/b"] * 4
    assert got[0] == ("web/a", "INFO started") and got[1] == ("web/b", "WARN slow")
    paged = filtered(logs, group, PaginationConfig={"PageSize": 3})
    assert paged == got
    events = logs.filter_log_events(logGroupName=group)["events"]
    assert len({e["eventId"] for e in events}) == 8
    assert filtered(logs, group, startTime=t + 2, endTime=t + 5) == got[2:5]
    assert [s for s, _ in filtered(logs, group, logStreamNames=["web/b"])] == ["web/b"] * 4
    assert [s for s, _ in filtered(logs, group, logStreamNamePrefix="web/a")] == ["web/a"] * 4


@pytest.mark.parametrize("pattern, want", [
    ("ERROR", ["ERROR disk full", "ERROR retrying soon"]),
    ("ERROR -retrying", ["ERROR disk full"]),
    ('"disk full"', ["ERROR disk full"]),
    ("?WARN ?INFO", ["INFO started", "WARN slow"]),
    ('{ $.level = "error" }', ['{"level":"error","ms":250}']),
    ("{ $.ms < 100 }", ['{"level":"info","ms":12}']),
    ("[ip, id, user, time, request, status = 404, bytes]", ['127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 404 2326']),
    ("[..., status = 2*, bytes < 100]", ['10.0.0.2 - - [10/Oct/2000:13:55:37 -0700] "GET /x HTTP/1.0" 200 12']),
])
def test_filter_patterns_find_the_right_events(logs, app_group, pattern, want):
    group, _ = app_group
    assert [m for _, m in filtered(logs, group, filterPattern=pattern)] == want


def test_filter_errors(logs, app_group):
    group, _ = app_group
    expect_error(lambda: logs.filter_log_events(logGroupName=group, filterPattern="{ $.a = "),
                 "InvalidParameterException", "filter pattern")
    expect_error(lambda: logs.filter_log_events(logGroupName=group, logStreamNames=["a"], logStreamNamePrefix="a"),
                 "InvalidParameterException", "mutually exclusive")
    expect_error(lambda: logs.filter_log_events(logGroupName=f"{group}-none"), "ResourceNotFoundException", "log group")
    expect_error(lambda: logs.filter_log_events(logGroupName=group, nextToken="garbage"),
                 "InvalidParameterException", "nextToken")


def test_requests_must_be_signed_for_logs(berth):
    body = {"logGroupNamePrefix": "/"}
    r = raw_call(berth, None, body, target=f"{LOGS}.DescribeLogGroups", service="ecs")
    assert_raw_error(r, 400, "InvalidSignatureException", "'logs'")
    ok = raw_call(berth, None, body, target=f"{LOGS}.DescribeLogGroups", service="logs")
    assert ok.status_code == 200 and "logGroups" in ok.json()
    r = raw_call(berth, "ListClusters", {}, service="logs")
    assert_raw_error(r, 400, "InvalidSignatureException", "'ecs'")
    r = raw_call(berth, None, {}, target=f"{LOGS}.CreateLogGroup", service="logs")
    assert_raw_error(r, 400, "InvalidParameterException", "logGroupName")


def test_aws_cli_reads_logs_through_the_profile(logs, app_group):
    group, _ = app_group
    streams = aws("logs", "describe-log-streams", "--log-group-name", group)["logStreams"]
    assert [s["logStreamName"] for s in streams] == ["web/a", "web/b"]
    out = aws("logs", "get-log-events", "--log-group-name", group, "--log-stream-name", "web/a", "--start-from-head")
    assert [e["message"] for e in out["events"]][:1] == ["INFO started"]
    out = aws("logs", "filter-log-events", "--log-group-name", group, "--filter-pattern", "ERROR")
    assert [e["message"] for e in out["events"]] == ["ERROR disk full", "ERROR retrying soon"]


def follow(logs, group, start, seen, stop):
    """What `aws logs tail --follow` (CLI v2) does: poll FilterLogEvents from the last
    timestamp seen, dropping event ids already shown."""
    ids = set()
    while not stop.is_set():
        for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group, startTime=start):
            for e in page["events"]:
                if e["eventId"] not in ids:
                    ids.add(e["eventId"])
                    seen.append((time.monotonic(), e["message"]))
                    start = max(start, e["timestamp"])
        time.sleep(0.2)


def test_a_follower_sees_new_lines_within_two_seconds(logs, stream):
    group, name = stream
    seen, stop = [], threading.Event()
    th = threading.Thread(target=follow, args=(logs_client(), group, now_ms() - 1000, seen, stop), daemon=True)
    th.start()
    try:
        sent = {}
        for i in range(5):
            sent[f"tick {i}"] = time.monotonic()
            put(logs, group, name, [f"tick {i}"])
            time.sleep(0.3)
        deadline = time.monotonic() + 5
        while len(seen) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        th.join(5)
    assert [m for _, m in seen] == [f"tick {i}" for i in range(5)]
    assert all(at - sent[m] < 2.0 for at, m in seen), [(m, round(at - sent[m], 2)) for at, m in seen]


def client_of(srv):
    creds = srv.credentials()
    return boto3.client("logs", endpoint_url=srv.endpoint, region_name="us-east-1",
                        aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key,
                        config=Config(retries=NO_RETRY))


def test_acknowledged_events_survive_sigkill(spawn_server):
    srv = spawn_server("logs-kill").start()
    logs = client_of(srv)
    logs.create_log_group(logGroupName="/kill")
    logs.create_log_stream(logGroupName="/kill", logStreamName="s")
    put(logs, "/kill", "s", [f"n{i}" for i in range(100)])
    srv.restart(hard=True)
    got = client_of(srv).get_log_events(logGroupName="/kill", logStreamName="s", startFromHead=True)["events"]
    assert [e["message"] for e in got] == [f"n{i}" for i in range(100)]
