"""Task roles and the task metadata endpoint v4 end to end: a real agent serves a task's role
credentials at 169.254.170.2 and the real boto3 inside the container uses them with no
configuration; the role's policy decides; another task cannot read them; they rotate before
they expire and expired ones are refused. Metadata shapes are read from inside a container
with busybox wget.

The server caps sessions at 20 s (BERTH_IAM_SESSION_CAP_SECONDS), so the agent refreshes the
credentials about every 10 s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from berthlib import REGION, BerthServer, berth_binary, expect_error, uid
from fleet import Agent, Registry, build_rootfs, retire, subnet, wait_registered

CAP = 20
CFG = Config(retries={"total_max_attempts": 1, "mode": "standard"})
TRUST_ECS_TASKS = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
TRUST_EC2 = TRUST_ECS_TASKS.replace("ecs-tasks", "ec2")
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["ecs:List*", "ecs:Describe*"], "Resource": "*"},
    {"Effect": "Deny", "Action": "ecs:DeleteCluster", "Resource": "*"}]})
PYTHON = Path(sys.base_prefix)
UNABLE = "ECS was unable to assume the role '{}' that was provided for this task."

# Runs inside the container with the host's python and boto3, and no AWS configuration.
IN_CONTAINER = r"""
import json, os, time, urllib.request, boto3, botocore.exceptions
out = {"env": {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "ECS_"))}}
uri = "http://169.254.170.2" + os.environ["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]
fetch = lambda: json.load(urllib.request.urlopen(uri, timeout=5))
def call(fn):
    try:
        fn()
        return "ok"
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
ecs = boto3.client("ecs")
out["list"] = call(ecs.list_clusters)
out["delete"] = call(lambda: ecs.delete_cluster(cluster=os.environ["CLUSTER"]))
first = fetch()
out["first"] = first
time.sleep(%(cap)d * 0.75)
second = fetch()
out["second"] = second
out["list_after_rotation"] = call(boto3.Session().client("ecs").list_clusters)
expiry = time.mktime(time.strptime(first["Expiration"], "%%Y-%%m-%%dT%%H:%%M:%%SZ")) - time.timezone
time.sleep(max(0, expiry - time.time()) + 1.5)
old = boto3.Session(aws_access_key_id=first["AccessKeyId"], aws_secret_access_key=first["SecretAccessKey"],
                    aws_session_token=first["Token"]).client("ecs")
out["list_expired"] = call(old.list_clusters)
json.dump(out, open("/out/result.json", "w"))
""" % {"cap": CAP}

# Runs in a second task: its own metadata, and an attempt at the first task's credentials.
PROBE = (
    'sleep 1; M=$ECS_CONTAINER_METADATA_URI_V4; '
    'for p in "" /task /taskWithTags /stats /task/stats; do wget -qO- "$M$p" > "/out/meta$(echo $p | tr / _)"; done; '
    'wget -qO- "http://169.254.170.2$STOLEN" > /out/stolen 2>&1; echo "rc=$?" >> /out/stolen; '
    'wget -qO- "$M" > /out/done'
)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("task-roles")
    server_env = dict(os.environ, BERTH_IAM_SESSION_CAP_SECONDS=str(CAP),
                      AWS_CONFIG_FILE=str(root / "config"), AWS_SHARED_CREDENTIALS_FILE=str(root / "credentials"))
    srv = BerthServer(berth_binary(), root / "data", env=server_env, log_path=root / "server.log").start()
    a = srv.admin
    session = boto3.Session(aws_access_key_id=a["accessKeyId"], aws_secret_access_key=a["secretAccessKey"],
                            region_name=REGION)
    ecs, iam = (session.client(n, endpoint_url=srv.endpoint, config=CFG) for n in ("ecs", "iam"))
    registry = Registry(root)
    image = registry.push_rootfs(build_rootfs(root / "rootfs"), "busybox:roles")
    cluster = uid("roles")
    ecs.create_cluster(clusterName=cluster)
    agent = Agent(srv, cluster, root, "t", subnet(40), "local-1a").start()
    role = iam.create_role(RoleName=uid("app"), AssumeRolePolicyDocument=TRUST_ECS_TASKS)["Role"]
    iam.put_role_policy(RoleName=role["RoleName"], PolicyName="ecs-read", PolicyDocument=POLICY)
    ec2_role = iam.create_role(RoleName=uid("ec2"), AssumeRolePolicyDocument=TRUST_EC2)["Role"]
    exec_role = iam.create_role(RoleName=uid("exec"), AssumeRolePolicyDocument=TRUST_ECS_TASKS)["Role"]
    iam.attach_role_policy(RoleName=exec_role["RoleName"],
                           PolicyArn="arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy")
    try:
        wait_registered(ecs, cluster, [agent])
        yield {"srv": srv, "ecs": ecs, "cluster": cluster, "image": image, "agent": agent, "root": root,
               "role": role["Arn"], "ec2_role": ec2_role["Arn"], "exec_role": exec_role["Arn"], "aws_env": server_env}
    finally:
        retire(ecs, [cluster], [agent])
        registry.stop()
        srv.stop()


def register(env, command, volumes, mounts, environment=(), **kw):
    ecs = env["ecs"]
    return ecs.register_task_definition(
        family=uid("roles"), networkMode="awsvpc", cpu="256", memory="512",
        volumes=[{"name": n, "host": {"sourcePath": str(p)}} for n, p in volumes],
        containerDefinitions=[{
            "name": "app", "image": env["image"], "command": command, "essential": True,
            "mountPoints": [{"sourceVolume": n, "containerPath": c, "readOnly": ro} for n, c, ro in mounts],
            "environment": [{"name": k, "value": v} for k, v in environment],
            "dockerLabels": {"team": "roles"},
        }], **kw)["taskDefinition"]


def run(env, definition, **kw):
    out = env["ecs"].run_task(cluster=env["cluster"], taskDefinition=definition["taskDefinitionArn"],
                              networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-1"]}}, **kw)
    assert out["failures"] == [], out["failures"]
    return out["tasks"][0]["taskArn"]


def wait_file(path: Path, env, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size:
            time.sleep(0.2)
            return path.read_text()
        time.sleep(0.25)
    raise AssertionError(f"{path} never written; agent log:\n{env['agent'].log_tail()}")


def credentials_id(env, task_arn: str) -> str:
    record = env["agent"].data_dir / "tasks" / f"{task_arn.rsplit('/', 1)[1]}.json"
    return json.loads(record.read_text())["credentialsId"]


@pytest.fixture(scope="module")
def role_task(env):
    """A task with the role running boto3 (the host's python, bind-mounted read-only)."""
    out = env["root"] / "out-a"
    out.mkdir()
    (out / "script.py").write_text(IN_CONTAINER)
    volumes = [("usr", "/usr"), ("lib", "/usr/lib"), ("lib64", "/usr/lib64"), ("py", PYTHON), ("out", out)]
    mounts = [("usr", "/usr", True), ("lib", "/lib", True), ("lib64", "/lib64", True), ("py", str(PYTHON), True),
              ("out", "/out", False)]
    d = register(env, [str(PYTHON / "bin" / "python3"), "/out/script.py"], volumes, mounts,
                 [("CLUSTER", env["cluster"])], taskRoleArn=env["role"])
    arn = run(env, d)
    return {"arn": arn, "out": out}


def test_sdk_in_the_container_uses_the_task_role(env, role_task):
    result = json.loads(wait_file(role_task["out"] / "result.json", env, CAP * 3))
    e = result["env"]
    assert e["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"].startswith("/v2/credentials/"), e
    assert e["AWS_ENDPOINT_URL"] == "http://169.254.170.2" and e["AWS_REGION"] == REGION, e
    assert result["list"] == "ok", result
    assert result["delete"] == "AccessDeniedException", result
    first, second = result["first"], result["second"]
    assert set(first) >= {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "RoleArn"}, first
    assert first["RoleArn"] == env["role"] and first["AccessKeyId"].startswith("ASIA")
    # Rotation: the agent fetched new credentials before the first ones expired, and they work.
    assert second["AccessKeyId"] != first["AccessKeyId"], (first, second)
    assert second["Expiration"] > first["Expiration"]
    assert result["list_after_rotation"] == "ok", result
    # The first session, once past its expiry, is refused as expired (the server keeps expired
    # keys for a day before it prunes them).
    assert result["list_expired"] == "ExpiredTokenException", result


def test_other_tasks_and_the_host_cannot_read_the_credentials(env, role_task):
    stolen = f"/v2/credentials/{credentials_id(env, role_task['arn'])}"
    out = env["root"] / "out-b"
    out.mkdir()
    d = register(env, ["sh", "-c", PROBE + "; trap 'exit 0' TERM; sleep 60 & wait"], [("out", out)], [("out", "/out", False)],
                 [("STOLEN", stolen)])
    arn = run(env, d, tags=[{"key": "team", "value": "roles"}])
    wait_file(out / "done", env, 60)
    text = (out / "stolen").read_text()
    assert "AccessKeyId" not in text and "rc=0" not in text, text
    # From the host (not the task's address) the id alone is not enough either.
    port = (env["agent"].data_dir / "endpoint-port").read_text().strip()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{port}{stolen}", timeout=5)
    assert refused.value.code == 400 and b"Credentials not found" in refused.value.read()
    check_metadata(env, out, arn)


def check_metadata(env, out: Path, arn: str):
    container = json.loads((out / "meta").read_text())
    task = json.loads((out / "meta_task").read_text())
    tagged = json.loads((out / "meta_taskWithTags").read_text())
    stats = json.loads((out / "meta_stats").read_text())
    task_stats = json.loads((out / "meta_task_stats").read_text())
    described = env["ecs"].describe_tasks(cluster=env["cluster"], tasks=[arn])["tasks"][0]
    for key in ("DockerId", "Name", "DockerName", "Image", "ImageID", "Labels", "DesiredStatus", "KnownStatus",
                "Limits", "CreatedAt", "StartedAt", "Type", "Networks", "ContainerARN"):
        assert key in container, (key, container)
    assert container["Name"] == "app" and container["Image"] == env["image"] and container["Type"] == "NORMAL"
    assert container["KnownStatus"] == "RUNNING" and container["ImageID"].startswith("sha256:")
    assert container["ContainerARN"] == described["containers"][0]["containerArn"]
    assert container["Labels"]["com.amazonaws.ecs.task-arn"] == arn and container["Labels"]["team"] == "roles"
    net = container["Networks"][0]
    assert net["NetworkMode"] == "awsvpc"
    eni = {d["name"]: d["value"] for d in described["attachments"][0]["details"]}
    assert net["IPv4Addresses"] == [eni["privateIPv4Address"]], (net, eni)
    assert task["TaskARN"] == arn and task["Cluster"] == described["clusterArn"]
    assert task["Family"] == described["taskDefinitionArn"].rsplit("/", 1)[1].split(":")[0]
    assert task["Revision"] == described["taskDefinitionArn"].rsplit(":", 1)[1]
    assert task["Limits"] == {"CPU": 0.25, "Memory": 512}, task["Limits"]
    assert task["LaunchType"] == "EC2" and task["AvailabilityZone"] == "local-1a"
    assert task["KnownStatus"] == "RUNNING" and task["DesiredStatus"] == "RUNNING"
    assert {"PullStartedAt", "PullStoppedAt"} <= set(task) and "TaskTags" not in task
    assert "EphemeralStorageMetrics" not in task, "Fargate tasks only"
    assert [c["DockerId"] for c in task["Containers"]] == [container["DockerId"]]
    assert tagged["TaskTags"] == {"team": "roles"}
    assert stats["id"] == container["DockerId"] and stats["memory_stats"]["usage"] > 0
    assert stats["cpu_stats"]["cpu_usage"]["total_usage"] > 0 and stats["pids_stats"]["current"] >= 1
    assert set(task_stats) == {container["DockerId"]}


@pytest.mark.parametrize("which", ["missing", "untrusted"])
def test_roles_ecs_cannot_assume_are_refused(env, which):
    ecs = env["ecs"]
    role = env["ec2_role"] if which == "untrusted" else env["role"].replace("role/", "role/nope-")
    d = ecs.register_task_definition(family=uid("bad"), taskRoleArn=role, containerDefinitions=[
        {"name": "app", "image": env["image"], "memory": 32}])["taskDefinition"]
    message = UNABLE.format(role)
    expect_error(lambda: ecs.run_task(cluster=env["cluster"], taskDefinition=d["taskDefinitionArn"]),
                 "ClientException", message, ci=False)
    expect_error(lambda: ecs.create_service(cluster=env["cluster"], serviceName=uid("s"), desiredCount=1,
                                            taskDefinition=d["taskDefinitionArn"]),
                 "ClientException", message, ci=False)
    plain = ecs.register_task_definition(family=uid("ok"), containerDefinitions=[
        {"name": "app", "image": env["image"], "memory": 32}])["taskDefinition"]
    instance = ecs.list_container_instances(cluster=env["cluster"])["containerInstanceArns"][0]
    expect_error(lambda: ecs.start_task(cluster=env["cluster"], taskDefinition=plain["taskDefinitionArn"],
                                        containerInstances=[instance], overrides={"taskRoleArn": role}),
                 "ClientException", message, ci=False)


def aws(env, *args) -> subprocess.CompletedProcess:
    """The aws CLI with the server's `berth` profile."""
    return subprocess.run(["aws", "--profile", "berth", "--output", "json", *args], env=env["aws_env"],
                          capture_output=True, text=True, timeout=60)


NETWORK_CLI = "awsvpcConfiguration={subnets=[subnet-1]}"


@pytest.mark.parametrize("which", ["missing", "untrusted"])
def test_execution_roles_ecs_cannot_assume_are_refused(env, which):
    ecs, cluster = env["ecs"], env["cluster"]
    role = env["ec2_role"] if which == "untrusted" else env["exec_role"].replace("role/", "role/nope-")
    message = UNABLE.format(role)
    bad = register(env, ["true"], [], [], executionRoleArn=role)
    network = {"awsvpcConfiguration": {"subnets": ["subnet-1"]}}
    expect_error(lambda: ecs.run_task(cluster=cluster, taskDefinition=bad["taskDefinitionArn"],
                                      networkConfiguration=network), "ClientException", message, ci=False)
    expect_error(lambda: ecs.create_service(cluster=cluster, serviceName=uid("s"), desiredCount=1,
                                            taskDefinition=bad["taskDefinitionArn"], networkConfiguration=network),
                 "ClientException", message, ci=False)
    cli = aws(env, "ecs", "run-task", "--cluster", cluster, "--task-definition", bad["taskDefinitionArn"],
              "--network-configuration", NETWORK_CLI)
    assert cli.returncode != 0 and "(ClientException)" in cli.stderr and message in cli.stderr, cli.stderr
    # An override is checked in place of the definition's (which is good here).
    good = register(env, ["true"], [], [], executionRoleArn=env["exec_role"])
    expect_error(lambda: ecs.run_task(cluster=cluster, taskDefinition=good["taskDefinitionArn"],
                                      networkConfiguration=network, overrides={"executionRoleArn": role}),
                 "ClientException", message, ci=False)
    instance = ecs.list_container_instances(cluster=cluster)["containerInstanceArns"][0]
    cli = aws(env, "ecs", "start-task", "--cluster", cluster, "--task-definition", good["taskDefinitionArn"],
              "--container-instances", instance, "--network-configuration", NETWORK_CLI,
              "--overrides", json.dumps({"executionRoleArn": role}))
    assert cli.returncode != 0 and "(ClientException)" in cli.stderr and message in cli.stderr, cli.stderr
    assert ecs.list_tasks(cluster=cluster, family=good["family"])["taskArns"] == [], "nothing was launched"


# Records what a container is given of roles: its AWS_ variables and, when it has a credentials
# URI, what that serves.
ROLE_ENV = ('env | grep ^AWS_ > /out/env; [ -z "$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" ] || '
            'wget -qO- "http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" > /out/creds; '
            "echo ok > /out/done; trap 'exit 0' TERM; sleep 60 & wait")


def test_a_good_execution_role_launches_and_never_reaches_the_containers(env):
    tasks = []

    def launch(name: str, cli: bool, **roles) -> Path:
        out = env["root"] / f"out-exec-{name}"
        out.mkdir()
        d = register(env, ["sh", "-c", ROLE_ENV], [("out", out)], [("out", "/out", False)], **roles)
        if cli:  # The aws CLI, with an override naming the good role over the definition's bad one.
            p = aws(env, "ecs", "run-task", "--cluster", env["cluster"], "--task-definition",
                    d["taskDefinitionArn"], "--network-configuration", NETWORK_CLI,
                    "--overrides", json.dumps({"executionRoleArn": env["exec_role"]}))
            assert p.returncode == 0, p.stderr
            tasks.append(json.loads(p.stdout)["tasks"][0]["taskArn"])
        else:
            tasks.append(run(env, d))
        wait_file(out / "done", env, 60)
        return out

    only = launch("only", cli=True, executionRoleArn=env["ec2_role"])
    assert "AWS_CONTAINER_CREDENTIALS" not in (only / "env").read_text(), (only / "env").read_text()
    assert not (only / "creds").exists()
    both = launch("both", cli=False, executionRoleArn=env["exec_role"], taskRoleArn=env["role"])
    assert "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/" in (both / "env").read_text()
    creds = json.loads((both / "creds").read_text())
    assert creds["RoleArn"] == env["role"] != env["exec_role"], creds
    for arn in tasks:
        env["ecs"].stop_task(cluster=env["cluster"], task=arn)


# Fetches the task's credentials and metadata every second, whatever the network mode.
LOOP = (
    'U=${AWS_CONTAINER_CREDENTIALS_FULL_URI:-http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI}; '
    "trap 'exit 0' TERM; while true; do "
    'wget -qO- "$U" > /out/c.tmp && mv /out/c.tmp /out/creds; '
    'wget -qO- "$ECS_CONTAINER_METADATA_URI_V4/task" > /out/t.tmp && mv /out/t.tmp /out/task; '
    'sleep 1 & wait; done'
)


def test_bridge_and_host_tasks_are_served_across_an_agent_restart(env):
    tasks = {}
    for mode in ("bridge", "host"):
        out = env["root"] / f"out-{mode}"
        out.mkdir()
        d = env["ecs"].register_task_definition(
            family=uid(mode), networkMode=mode, taskRoleArn=env["role"],
            volumes=[{"name": "out", "host": {"sourcePath": str(out)}}],
            containerDefinitions=[{"name": "app", "image": env["image"], "memory": 32,
                                   "command": ["sh", "-c", LOOP],
                                   "mountPoints": [{"sourceVolume": "out", "containerPath": "/out"}]}],
        )["taskDefinition"]
        out_run = env["ecs"].run_task(cluster=env["cluster"], taskDefinition=d["taskDefinitionArn"])
        assert out_run["failures"] == [], out_run["failures"]
        tasks[mode] = (out_run["tasks"][0]["taskArn"], out)

    def served(arn: str, out: Path):
        creds = json.loads(wait_file(out / "creds", env, 30))
        assert creds["RoleArn"] == env["role"] and creds["AccessKeyId"].startswith("ASIA"), creds
        assert json.loads(wait_file(out / "task", env, 30))["TaskARN"] == arn

    for arn, out in tasks.values():
        served(arn, out)
    # A SIGKILLed agent comes back on the same endpoint port; the adopted tasks are served again.
    env["agent"].kill()
    for _, out in tasks.values():
        (out / "creds").unlink()
        (out / "task").unlink()
    env["agent"].start()
    for arn, out in tasks.values():
        served(arn, out)
