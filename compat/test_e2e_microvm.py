"""`--isolation microvm` end to end: a server whose Fargate capacity runs each task in its own
qemu microVM (TCG here: this machine's nested KVM cannot run a guest), driven through boto3.
What the containers print is read back through CloudWatch Logs (awslogs), so the facts are
the guest's: its kernel, its memory, its network reaching the task role endpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from berthlib import REGION, BerthServer, berth_binary, uid
from fleet import NET_SLOT, Registry, build_rootfs, reap, retire, subnet

pytestmark = pytest.mark.skipif(not Path("/usr/bin/qemu-system-x86_64").exists(),
                                reason="qemu-system-x86 is not installed (scripts/test installs it)")

CFG = Config(retries={"total_max_attempts": 1, "mode": "standard"})
NETWORK = {"awsvpcConfiguration": {"subnets": ["subnet-0abc"], "securityGroups": ["sg-0def"]}}
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "ecs:List*", "Resource": "*"}]})


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    work = tmp_path_factory.mktemp("microvm")
    env = dict(os.environ, AWS_CONFIG_FILE=str(work / "aws-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(work / "aws-credentials"))
    args = ["--fargate-capacity", "--isolation", "microvm", "--microvm-accel", "tcg",
            "--fargate-bridge", f"bt{NET_SLOT}m", "--fargate-subnet", subnet(37)]
    # The start-up probe boots one guest before the server listens.
    server = BerthServer(berth_binary(), work / "data", env=env, log_path=work / "server.log", args=args)
    server.start(timeout=90)
    a = server.admin
    session = boto3.Session(aws_access_key_id=a["accessKeyId"], aws_secret_access_key=a["secretAccessKey"],
                            region_name=REGION)
    ecs, logs, iam = (session.client(n, endpoint_url=server.endpoint, config=CFG) for n in ("ecs", "logs", "iam"))
    registry = Registry(work)
    image = registry.push_rootfs(build_rootfs(work / "rootfs"), "busybox:microvm")
    cluster = uid("vm")
    ecs.create_cluster(clusterName=cluster)
    role = iam.create_role(RoleName=uid("vm"), AssumeRolePolicyDocument=TRUST)["Role"]
    iam.put_role_policy(RoleName=role["RoleName"], PolicyName="list", PolicyDocument=POLICY)
    try:
        deadline = time.time() + 60
        while not (server.data_dir / "fargate" / "instance-arn").exists():
            assert time.time() < deadline, f"Fargate capacity did not register:\n{server.log_tail()}"
            time.sleep(0.2)
        yield {"server": server, "ecs": ecs, "logs": logs, "cluster": cluster, "image": image, "role": role["Arn"]}
    finally:
        retire(ecs, [cluster], [], timeout=60)
        server.stop()
        kill_vms(server.data_dir)
        reap(server.data_dir / "fargate")
        registry.stop()


def kill_vms(data_dir: Path) -> None:
    """The qemu processes of this server's VMs that outlived it (they outlive their agent)."""
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError):
            continue
        if "qemu-system" in cmdline and str(data_dir) in cmdline:
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


def register(vm, command, containers=None, **kw):
    """A one-container definition logging to a new group; one vCPU, since the task's CPU
    quota bounds qemu and TCG needs a whole core to boot in seconds."""
    group = uid("/vm/")
    c = {"name": "app", "image": vm["image"], "command": command, "stopTimeout": 3,
         "logConfiguration": {"logDriver": "awslogs", "options": {
             "awslogs-group": group, "awslogs-region": REGION, "awslogs-stream-prefix": "vm",
             "awslogs-create-group": "true"}}}
    d = vm["ecs"].register_task_definition(
        family=uid("vm"), containerDefinitions=containers or [c], requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc", cpu="1024", memory="2048", executionRoleArn=vm["role"], **kw)["taskDefinition"]
    return d, group


def run(vm, family):
    out = vm["ecs"].run_task(cluster=vm["cluster"], taskDefinition=family, launchType="FARGATE",
                             networkConfiguration=NETWORK)
    assert out["failures"] == [], out["failures"]
    return out["tasks"][0]["taskArn"]


def wait(vm, arn, waiter, attempts=90):
    vm["ecs"].get_waiter(waiter).wait(cluster=vm["cluster"], tasks=[arn],
                                      WaiterConfig={"Delay": 1, "MaxAttempts": attempts})
    return vm["ecs"].describe_tasks(cluster=vm["cluster"], tasks=[arn])["tasks"][0]


def log_lines(vm, group, arn, want: str, timeout=20.0) -> list[str]:
    stream = f"vm/app/{arn.rsplit('/', 1)[1]}"
    deadline = time.time() + timeout
    while True:
        try:
            events = vm["logs"].get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
        except vm["logs"].exceptions.ResourceNotFoundException:
            events = []
        lines = [e["message"] for e in events]
        if any(want in line for line in lines) or time.time() > deadline:
            return lines
        time.sleep(0.5)


def test_a_task_runs_in_its_own_vm_with_the_tasks_size_logs_exit_code_and_role(vm):
    script = ('echo "kernel=$(uname -r)"; grep MemTotal /proc/meminfo; echo "cpus=$(nproc)"; '
              'wget -qO- "http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" | grep -o AccessKeyId; '
              'echo done >&2; exit 3')
    d, group = register(vm, ["sh", "-c", script], taskRoleArn=vm["role"])
    arn = run(vm, d["family"])
    task = wait(vm, arn, "tasks_stopped")
    [c] = task["containers"]
    assert c.get("exitCode") == 3, (c, task.get("stoppedReason"))
    assert task["stoppedReason"] == "Essential container in task exited", task
    lines = log_lines(vm, group, arn, "done")
    kernel = next((line.split("=", 1)[1] for line in lines if line.startswith("kernel=")), None)
    assert kernel and kernel != os.uname().release, (kernel, lines)
    assert Path(f"/boot/vmlinuz-{kernel}").exists(), lines
    [mem] = [line for line in lines if line.startswith("MemTotal:")]
    kib = int(mem.split()[1])
    # 2048 MiB of guest RAM, less what the guest kernel keeps for itself.
    assert 1900 * 1024 < kib <= 2048 * 1024, mem
    assert "cpus=1" in lines, lines
    assert "AccessKeyId" in lines, f"the guest could not fetch its role credentials: {lines}"
    assert "done" in lines, lines


def test_stop_task_stops_the_vm_and_qemu_runs_in_the_task_cgroup(vm):
    d, group = register(vm, ["sh", "-c", "trap 'echo got-term; exit 0' TERM; echo up; while true; do sleep 0.2; done"])
    arn = run(vm, d["family"])
    wait(vm, arn, "tasks_running")
    task_id = arn.rsplit("/", 1)[1]
    assert "up" in log_lines(vm, group, arn, "up")
    procs = Path(f"/sys/fs/cgroup/memory/berth/{task_id}/cgroup.procs").read_text().split()
    names = [Path(f"/proc/{p}/comm").read_text().strip() for p in procs if Path(f"/proc/{p}").exists()]
    assert any(n.startswith("qemu-system") for n in names), names
    started = time.time()
    vm["ecs"].stop_task(cluster=vm["cluster"], task=arn, reason="test stop")
    task = wait(vm, arn, "tasks_stopped", attempts=40)
    assert task["containers"][0].get("exitCode") == 0, task
    assert task["stoppedReason"] == "test stop", task
    assert time.time() - started < 30
    assert "got-term" in log_lines(vm, group, arn, "got-term")
    assert not Path(f"/sys/fs/cgroup/memory/berth/{task_id}").exists() or not any(
        Path(f"/proc/{p}").exists() for p in procs)


def test_the_vm_outlives_a_sigkilled_server_and_is_adopted(vm):
    """The VM's supervisor is the container shim, in its own session: SIGKILL of the server
    (and its managed agent) leaves the guest running, and the restarted agent adopts it,
    stops it through the console and collects its exit code."""
    d, group = register(vm, ["sh", "-c", "trap 'echo got-term; exit 5' TERM; echo up; while true; do sleep 0.2; done"])
    arn = run(vm, d["family"])
    wait(vm, arn, "tasks_running")
    assert "up" in log_lines(vm, group, arn, "up")
    vm["server"].kill()
    vm["server"].start(timeout=90)
    task = vm["ecs"].describe_tasks(cluster=vm["cluster"], tasks=[arn])["tasks"][0]
    assert task["lastStatus"] == "RUNNING", task
    vm["ecs"].stop_task(cluster=vm["cluster"], task=arn, reason="after restart")
    task = wait(vm, arn, "tasks_stopped", attempts=60)
    assert task["containers"][0].get("exitCode") == 5, task
    assert "got-term" in log_lines(vm, group, arn, "got-term")


def test_what_a_vm_cannot_run_yet_is_refused_with_a_reason(vm):
    two = [{"name": n, "image": vm["image"], "command": ["true"]} for n in ("a", "b")]
    d, _ = register(vm, None, containers=two)
    task = wait(vm, run(vm, d["family"]), "tasks_stopped", attempts=30)
    assert task["stoppedReason"].startswith(
        "CannotStartContainerError: microVM isolation does not support tasks of more than one container"), task


def test_kvm_is_probed_at_start_up_and_an_unusable_one_refused(tmp_path):
    """With the default accelerator the server boots a probe guest before it serves: on a
    host whose KVM cannot run a guest (this project's machines) it refuses to start."""
    proc = subprocess.Popen(
        [str(berth_binary()), "server", "--data-dir", str(tmp_path / "data"), "--listen", "127.0.0.1:0",
         "--no-profile", "--fargate-capacity", "--isolation", "microvm"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, RUST_BACKTRACE="0"))
    try:
        stdout, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.skip("KVM ran the probe guest here, so the server started")
    assert proc.returncode != 0
    assert "--isolation microvm" in stderr and "the probe microVM (Kvm) did not boot" in stderr, stderr
    assert "listening on" not in stdout, stdout
    bad = subprocess.run([str(berth_binary()), "server", "--data-dir", str(tmp_path / "d2"), "--fargate-capacity",
                          "--isolation", "microvm", "--microvm-accel", "xen"], capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "unknown microVM accelerator \"xen\"" in bad.stderr, bad.stderr
