"""Fargate mode end to end: a server with its managed capacity (as `berth dev` runs it), no
agent registered by the user, real runc containers in per-task sandboxes, driven by the aws
CLI and boto3."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from berthlib import BerthServer, berth_binary, profile_client, uid, wait_for
from fleet import NET_SLOT, Registry, build_rootfs, reap, retire, subnet

SPOT_WARNING = 4
NETWORK = {"awsvpcConfiguration": {"subnets": ["subnet-0abc"], "securityGroups": ["sg-0def"]}}


@pytest.fixture(scope="module")
def fargate(tmp_path_factory):
    """A server with Fargate capacity on this run's bridge, its own AWS config files, a registry."""
    work = tmp_path_factory.mktemp("fargate")
    env = dict(os.environ, AWS_CONFIG_FILE=str(work / "aws-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(work / "aws-credentials"))
    args = ["--fargate-capacity", "--fargate-bridge", f"bt{NET_SLOT}f", "--fargate-subnet", subnet(35),
            "--task-healthy-after", "1", "--fargate-spot-warning", str(SPOT_WARNING)]
    server = BerthServer(berth_binary(), work / "data", env=env, log_path=work / "server.log", args=args).start()
    registry = Registry(work)
    image = registry.push_rootfs(build_rootfs(work / "rootfs"), "busybox:fargate")
    saved = {k: os.environ.get(k) for k in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")}
    os.environ.update(AWS_CONFIG_FILE=env["AWS_CONFIG_FILE"], AWS_SHARED_CREDENTIALS_FILE=env["AWS_SHARED_CREDENTIALS_FILE"])
    ecs = profile_client()
    cluster = uid("fg")
    ecs.create_cluster(clusterName=cluster)
    try:
        wait_capacity(server)
        yield {"server": server, "ecs": ecs, "cluster": cluster, "image": image, "env": env}
    finally:
        retire(ecs, [cluster], [])
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()
        reap(server.data_dir / "fargate")
        registry.stop()


def wait_capacity(server: BerthServer, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while not (server.data_dir / "fargate" / "instance-arn").exists():
        assert time.time() < deadline, f"Fargate capacity did not register:\n{server.log_tail()}"
        time.sleep(0.2)


def aws(fg, *args) -> dict:
    out = subprocess.run(["aws", "--profile", "berth", "--output", "json", *args], env=fg["env"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if out.stdout.strip() else {}


def fargate_td(fg, command, cpu="256", memory="512", mount_points=(), **kw):
    c = {"name": "app", "image": fg["image"], "command": command, "stopTimeout": 2}
    if mount_points:
        c["mountPoints"] = list(mount_points)
    return fg["ecs"].register_task_definition(
        family=uid("fg"), containerDefinitions=[c], requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
        cpu=cpu, memory=memory, **kw)["taskDefinition"]


def run(fg, family, **kw):
    out = fg["ecs"].run_task(cluster=fg["cluster"], taskDefinition=family, launchType="FARGATE",
                             networkConfiguration=NETWORK, **kw)
    assert out["failures"] == [], out["failures"]
    return [t["taskArn"] for t in out["tasks"]]


def wait(fg, arns, waiter="tasks_running", timeout=60):
    fg["ecs"].get_waiter(waiter).wait(cluster=fg["cluster"], tasks=arns,
                                      WaiterConfig={"Delay": 1, "MaxAttempts": timeout})
    return fg["ecs"].describe_tasks(cluster=fg["cluster"], tasks=arns)["tasks"]


def cgroup_value(controller: str, task_id: str, name: str) -> int:
    return int(Path(f"/sys/fs/cgroup/{controller}/berth/{task_id}/{name}").read_text().strip())


def test_fargate_task_through_the_cli_with_no_user_agent(fargate):
    fg = fargate
    d = fargate_td(fg, ["sleep", "600"], cpu="512", memory="1024")
    out = aws(fg, "ecs", "run-task", "--cluster", fg["cluster"], "--task-definition", d["family"],
              "--launch-type", "FARGATE", "--platform-version", "LATEST", "--network-configuration",
              "awsvpcConfiguration={subnets=[subnet-0abc],securityGroups=[sg-0def]}")
    [task] = out["tasks"]
    arn = task["taskArn"]
    assert task["launchType"] == "FARGATE" and "containerInstanceArn" not in task
    assert task["platformVersion"] == "1.4.0" and task["platformFamily"] == "Linux"
    assert task["ephemeralStorage"] == {"sizeInGiB": 20}
    aws(fg, "ecs", "wait", "tasks-running", "--cluster", fg["cluster"], "--tasks", arn)
    assert aws(fg, "ecs", "list-container-instances", "--cluster", fg["cluster"])["containerInstanceArns"] == []
    [cl] = aws(fg, "ecs", "describe-clusters", "--clusters", fg["cluster"])["clusters"]
    assert cl["registeredContainerInstancesCount"] == 0 and cl["runningTasksCount"] == 1
    deadline = time.time() + 10
    while True:
        task = aws(fg, "ecs", "describe-tasks", "--cluster", fg["cluster"], "--tasks", arn)["tasks"][0]
        if task["attachments"][0]["status"] == "ATTACHED" or time.time() > deadline:
            break
        time.sleep(0.3)
    assert task["connectivity"] == "CONNECTED" and task["connectivityAt"]
    [eni] = task["attachments"]
    details = {kv["name"]: kv["value"] for kv in eni["details"]}
    assert eni["type"] == "ElasticNetworkInterface" and details["subnetId"] == "subnet-0abc"
    assert details["privateIPv4Address"].startswith(f"10.{213 + NET_SLOT}.35."), details
    task_id = arn.rsplit("/", 1)[1]
    # The sandbox's cgroup is sized exactly to the task: 512 units = half a core, 1024 MiB.
    period = cgroup_value("cpu", task_id, "cpu.cfs_period_us")
    assert cgroup_value("cpu", task_id, "cpu.cfs_quota_us") == 512 * period // 1024
    assert cgroup_value("memory", task_id, "memory.limit_in_bytes") == 1024 * 1024 * 1024
    assert aws(fg, "ecs", "list-tasks", "--cluster", fg["cluster"], "--launch-type", "FARGATE")["taskArns"] == [arn]
    aws(fg, "ecs", "stop-task", "--cluster", fg["cluster"], "--task", arn)
    aws(fg, "ecs", "wait", "tasks-stopped", "--cluster", fg["cluster"], "--tasks", arn)


# The container's exit code: the total of `df -k /` in tenths of a GiB, or 1 when its scoped
# volume is not on the same (the task's) file system.
DF = ("t=$(df -Pk / | awk 'NR==2{print $2}'); v=$(df -Pk /scratch | awk 'NR==2{print $2}'); "
      "[ \"$t\" = \"$v\" ] || exit 1; exit $((t * 10 / 1048576))")
SCRATCH = {"volumes": [{"name": "scratch"}]}


def storage_dir(fg) -> Path:
    return fg["server"].data_dir / "fargate" / "storage"


def mounted(path: Path) -> bool:
    return any(line.split()[4] == str(path) for line in Path("/proc/self/mountinfo").read_text().splitlines())


def wait_storage_gone(fg, task_id: str, timeout: float = 15.0) -> None:
    image, mount_point = storage_dir(fg) / f"{task_id}.img", storage_dir(fg) / task_id
    deadline = time.time() + timeout
    while image.exists() or mount_point.exists() or mounted(mount_point):
        assert time.time() < deadline, f"the task's storage was not removed:\n{fg['server'].log_tail()}"
        time.sleep(0.2)
    backing = Path("/sys/block").glob("loop*/loop/backing_file")
    assert not any(str(image) in b.read_text() for b in backing), "a loop device still backs the task's file"


def test_ephemeral_storage_bounds_the_tasks_file_system(fargate):
    fg = fargate
    mount = [{"sourceVolume": "scratch", "containerPath": "/scratch"}]
    sized = fargate_td(fg, ["sh", "-c", DF], mount_points=mount, ephemeralStorage={"sizeInGiB": 21}, **SCRATCH)
    default = fargate_td(fg, ["sh", "-c", DF], mount_points=mount, **SCRATCH)
    [a] = run(fg, sized["family"])
    [b] = run(fg, default["family"])
    tasks = {t["taskArn"]: t for t in wait(fg, [a, b], "tasks_stopped")}
    # ext4 keeps ~2.5% for its journal and inode tables: 21 GiB shows as 20.4-21.0, 20 as 19.5-20.0.
    for arn, gib in ((a, 21), (b, 20)):
        t = tasks[arn]
        assert t["ephemeralStorage"] == {"sizeInGiB": gib}
        code = t["containers"][0].get("exitCode")
        assert code is not None and gib * 10 * 0.97 <= code <= gib * 10, (gib, t["containers"][0])
        wait_storage_gone(fg, arn.rsplit("/", 1)[1])


def test_ephemeral_storage_survives_an_agent_sigkill_and_is_removed_at_task_end(fargate):
    fg = fargate
    d = fargate_td(fg, ["sh", "-c", "echo kept > /marker; exec sleep 600"])
    [arn] = run(fg, d["family"])
    wait(fg, [arn])
    task_id = arn.rsplit("/", 1)[1]
    mount_point = storage_dir(fg) / task_id
    marker = mount_point / "containers" / f"{task_id}-app" / "upper" / "marker"
    wait_for(lambda: marker.exists(), timeout=10, what="the container's write in its upper directory")
    assert mounted(mount_point)
    fg["server"].restart(hard=True)  # the managed agent runs in the server process
    # The running task keeps its mounted storage; the restarted agent adopts it and, at the
    # task's end, removes it.
    assert mounted(mount_point) and marker.read_text() == "kept\n"
    [t] = wait(fg, [arn])
    assert t["lastStatus"] == "RUNNING"
    fg["ecs"].stop_task(cluster=fg["cluster"], task=arn)
    wait(fg, [arn], "tasks_stopped")
    wait_storage_gone(fg, task_id)


# Reads the task metadata before and after writing 64 MiB; the answers land in the container's
# writable layer, which the test reads from the host (Fargate tasks get no host volumes).
METRICS = ('M="$ECS_CONTAINER_METADATA_URI_V4/task"; wget -qO- "$M" > /before.json && '
           'dd if=/dev/zero of=/blob bs=1048576 count=64 2>/dev/null && wget -qO- "$M" > /after.json && '
           ': > /done; exec sleep 600')


def test_task_metadata_reports_the_ephemeral_storage_it_measures(fargate):
    fg = fargate
    d = fargate_td(fg, ["sh", "-c", METRICS], ephemeralStorage={"sizeInGiB": 21})
    [arn] = run(fg, d["family"])
    wait(fg, [arn])
    task_id = arn.rsplit("/", 1)[1]
    mount_point = storage_dir(fg) / task_id
    upper = mount_point / "containers" / f"{task_id}-app" / "upper"
    wait_for(lambda: (upper / "done").exists(), timeout=20, what="the container's two metadata reads")
    before, after = (json.loads((upper / f"{n}.json").read_text()) for n in ("before", "after"))
    assert before["LaunchType"] == "FARGATE" and before["TaskARN"] == arn, before
    b, a = before["EphemeralStorageMetrics"], after["EphemeralStorageMetrics"]
    assert set(b) == {"Utilized", "Reserved"} and all(isinstance(v, int) for v in (*b.values(), *a.values())), b
    # Reserved: the 21 GiB asked for, less what ext4 keeps for its journal and inode tables;
    # the same figure `df` gives for the task's file system.
    assert 21 * 1024 * 0.97 <= b["Reserved"] <= 21 * 1024 and a["Reserved"] == b["Reserved"], (b, a)
    st = os.statvfs(mount_point)
    assert b["Reserved"] == st.f_blocks * st.f_frsize >> 20, (b, st)
    # Utilized grows by what the container wrote (64 MiB, and a block or two of metadata).
    assert b["Utilized"] < 64 and 64 <= a["Utilized"] - b["Utilized"] <= 66, (b, a)
    fg["ecs"].stop_task(cluster=fg["cluster"], task=arn)
    wait(fg, [arn], "tasks_stopped")


def test_two_fargate_tasks_share_neither_loopback_nor_processes(fargate):
    fg = fargate
    server = fargate_td(fg, ["sh", "-c", "httpd -p 127.0.0.1:9999 -h /www; exec sleep 3601"])
    [a] = run(fg, server["family"])
    wait(fg, [a])
    # Exit 0: the own loopback answers, the other task's loopback and processes are invisible.
    # (busybox nc and /proc: the static busybox's wget and ps need NSS, which it lacks.)
    get = "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 2 127.0.0.1 {} | grep -q hello-from-berth"
    procs = "cat /proc/[0-9]*/cmdline | tr '\\0' ' ' | grep -q '[s]leep 3601'"
    probe = fargate_td(fg, ["sh", "-c",
                            f"httpd -p 127.0.0.1:9998 -h /www; ok=0; for i in $(seq 30); do "
                            f"{get.format(9998)} && ok=1 && break; sleep 0.3; done; [ $ok = 1 ] || exit 12; "
                            f"{get.format(9999)} && exit 10; {procs} && exit 11; exit 0"])
    [b] = run(fg, probe["family"])
    [done] = wait(fg, [b], "tasks_stopped")
    assert done["containers"][0].get("exitCode") == 0, done["containers"][0]
    # The checks can fail: inside one task, its own process is visible.
    own = fargate_td(fg, ["sh", "-c", f"sleep 3601 & sleep 0.3; {procs} && exit 11; exit 0"])
    [c] = run(fg, own["family"])
    [seen] = wait(fg, [c], "tasks_stopped")
    assert seen["containers"][0].get("exitCode") == 11, seen["containers"][0]
    fg["ecs"].stop_task(cluster=fg["cluster"], task=a)


def test_fargate_service_reaches_its_desired_count(fargate):
    fg = fargate
    d = fargate_td(fg, ["sleep", "600"])
    name = uid("svc")
    aws(fg, "ecs", "create-service", "--cluster", fg["cluster"], "--service-name", name, "--task-definition",
        d["family"], "--desired-count", "2", "--launch-type", "FARGATE", "--network-configuration",
        "awsvpcConfiguration={subnets=[subnet-0abc],securityGroups=[sg-0def]}")
    aws(fg, "ecs", "wait", "services-stable", "--cluster", fg["cluster"], "--services", name)
    [svc] = aws(fg, "ecs", "describe-services", "--cluster", fg["cluster"], "--services", name)["services"]
    assert svc["launchType"] == "FARGATE" and svc["platformVersion"] == "1.4.0" and svc["runningCount"] == 2
    assert svc["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"] == ["sg-0def"]
    arns = aws(fg, "ecs", "list-tasks", "--cluster", fg["cluster"], "--service-name", name)["taskArns"]
    tasks = aws(fg, "ecs", "describe-tasks", "--cluster", fg["cluster"], "--tasks", *arns)["tasks"]
    assert len(tasks) == 2 and all(t["launchType"] == "FARGATE" and t["lastStatus"] == "RUNNING" for t in tasks)
    aws(fg, "ecs", "delete-service", "--cluster", fg["cluster"], "--service", name, "--force")


def test_capacity_provider_strategy_places_on_fargate_and_spot(fargate):
    fg = fargate
    d = fargate_td(fg, ["sleep", "600"])
    out = fg["ecs"].run_task(cluster=fg["cluster"], taskDefinition=d["family"], count=3, networkConfiguration=NETWORK,
                             capacityProviderStrategy=[{"capacityProvider": "FARGATE", "base": 1, "weight": 1},
                                                       {"capacityProvider": "FARGATE_SPOT", "weight": 1}])
    assert out["failures"] == []
    providers = sorted(t["capacityProviderName"] for t in out["tasks"])
    assert providers == ["FARGATE", "FARGATE", "FARGATE_SPOT"]
    assert all(t["launchType"] == "FARGATE" for t in out["tasks"])
    for t in out["tasks"]:
        fg["ecs"].stop_task(cluster=fg["cluster"], task=t["taskArn"])


def test_spot_task_is_interrupted_with_a_warning_when_capacity_is_short(fargate):
    fg, ecs = fargate, fargate["ecs"]
    retire(ecs, [fg["cluster"]], [], timeout=40)  # the capacity is free for what follows
    # The managed agent offers 1024 CPU units per core: the big task fits only without the Spot one.
    big_cpu = 2048 if (os.cpu_count() or 2) < 4 else 4096
    # The Spot task ignores SIGTERM, so it lives out the whole warning before the SIGKILL.
    spot = fargate_td(fg, ["sh", "-c", "trap '' TERM; sleep 600"], cpu="1024", memory="2048")
    out = ecs.run_task(cluster=fg["cluster"], taskDefinition=spot["family"], networkConfiguration=NETWORK,
                       capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}])
    [s] = [t["taskArn"] for t in out["tasks"]]
    wait(fg, [s])
    big = fargate_td(fg, ["sleep", "600"], cpu=str(big_cpu), memory="8192")
    short = ecs.run_task(cluster=fg["cluster"], taskDefinition=big["family"], launchType="FARGATE",
                         networkConfiguration=NETWORK)
    assert short["tasks"] == [] and "Capacity is unavailable" in short["failures"][0]["reason"]
    [t] = ecs.describe_tasks(cluster=fg["cluster"], tasks=[s])["tasks"]
    assert t["stopCode"] == "SpotInterruption" and t["desiredStatus"] == "STOPPED"
    [t] = wait(fg, [s], "tasks_stopped")
    assert t["containers"][0].get("exitCode") == 137
    assert t["stoppedAt"].timestamp() - t["stoppingAt"].timestamp() >= SPOT_WARNING - 0.5
    again = ecs.run_task(cluster=fg["cluster"], taskDefinition=big["family"], launchType="FARGATE",
                         networkConfiguration=NETWORK)
    assert again["failures"] == [] and again["tasks"][0]["launchType"] == "FARGATE"
    ecs.stop_task(cluster=fg["cluster"], task=again["tasks"][0]["taskArn"])

