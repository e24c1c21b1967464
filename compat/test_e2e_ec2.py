"""EC2 mode end to end: two real agents (runc containers, CNI networks) in one cluster,
images in a loopback docker-registry, driven by boto3 and the aws CLI."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

import boto3
import pytest

from berthlib import uid
from fleet import NET_SLOT, Agent, Registry, build_rootfs, retire, shim_pids, subnet, wait_registered


@pytest.fixture(scope="module")
def fleet(berth, ecs, tmp_path_factory):
    work = tmp_path_factory.mktemp("fleet")
    registry = Registry(work)
    rootfs = build_rootfs(work / "rootfs")
    image = registry.push_rootfs(rootfs, "busybox:e2e")
    # A bearer-token registry: agent a has its credentials, agent b a wrong password.
    private = Registry(work / "private", token_auth=("berth", "t0ken"))
    private_image = private.push_rootfs(rootfs, "private/busybox:1", by_digest=True)
    cluster = uid("e2e")
    ecs.create_cluster(clusterName=cluster)
    agents = [
        Agent(berth, cluster, work, "a", subnet(20), "local-1a", "stack=alpha",
              registry_auth=f"{private.host}=berth:t0ken").start(),
        Agent(berth, cluster, work, "b", subnet(21), "local-1b", "stack=beta",
              registry_auth=f"{private.host}=berth:wrong").start(),
    ]
    try:
        wait_registered(ecs, cluster, agents)
        yield {"cluster": cluster, "image": image, "agents": agents, "registry": registry,
               "private_image": private_image}
    finally:
        retire(ecs, [cluster], agents)
        registry.stop()
        private.stop()


def td(ecs, fleet, containers, **kw):
    family = uid("e2e")
    for c in containers:
        c.setdefault("image", fleet["image"])
        c.setdefault("memory", 64)
    return ecs.register_task_definition(family=family, containerDefinitions=containers, **kw)["taskDefinition"]


def run(ecs, fleet, family, **kw):
    out = ecs.run_task(cluster=fleet["cluster"], taskDefinition=family, **kw)
    assert out["failures"] == [], out["failures"]
    return [t["taskArn"] for t in out["tasks"]]


def wait_stopped(ecs, fleet, arns, timeout=60):
    ecs.get_waiter("tasks_stopped").wait(cluster=fleet["cluster"], tasks=arns,
                                         WaiterConfig={"Delay": 1, "MaxAttempts": timeout})
    return ecs.describe_tasks(cluster=fleet["cluster"], tasks=arns)["tasks"]


def wait_running(ecs, fleet, arns, timeout=60):
    ecs.get_waiter("tasks_running").wait(cluster=fleet["cluster"], tasks=arns,
                                         WaiterConfig={"Delay": 1, "MaxAttempts": timeout})
    return ecs.describe_tasks(cluster=fleet["cluster"], tasks=arns)["tasks"]


def container(task, name):
    return next(c for c in task["containers"] if c["name"] == name)


def test_exit_code_env_and_command_overrides(ecs, fleet):
    d = td(ecs, fleet, [{"name": "app", "command": ["sh", "-c", "exit $CODE"],
                         "environment": [{"name": "CODE", "value": "5"}]}])
    plain = run(ecs, fleet, d["family"])
    env = run(ecs, fleet, d["family"], overrides={"containerOverrides": [
        {"name": "app", "environment": [{"name": "CODE", "value": "9"}]}]})
    cmd = run(ecs, fleet, d["family"], overrides={"containerOverrides": [
        {"name": "app", "command": ["sh", "-c", "exit 4"]}]})
    tasks = {t["taskArn"]: t for t in wait_stopped(ecs, fleet, plain + env + cmd)}
    c = container(tasks[plain[0]], "app")
    assert c.get("exitCode") == 5, (c.get("lastStatus"), c.get("reason"), c.get("runtimeId"))
    assert container(tasks[env[0]], "app")["exitCode"] == 9
    assert container(tasks[cmd[0]], "app")["exitCode"] == 4
    t = tasks[plain[0]]
    assert t["lastStatus"] == "STOPPED" and t["stopCode"] == "EssentialContainerExited"
    assert t["stoppedReason"] == "Essential container in task exited"
    for key in ("createdAt", "pullStartedAt", "pullStoppedAt", "startedAt", "stoppedAt", "stoppingAt"):
        assert key in t, key


def test_published_port_answers_and_waiters_via_cli(ecs, fleet):
    d = td(ecs, fleet, [{"name": "web", "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
                         "portMappings": [{"containerPort": 8080, "hostPort": 0}]}])
    [arn] = run(ecs, fleet, d["family"])
    cli = ["aws", "--profile", "berth", "ecs", "wait"]
    subprocess.run(cli + ["tasks-running", "--cluster", fleet["cluster"], "--tasks", arn], check=True, timeout=90)
    task = ecs.describe_tasks(cluster=fleet["cluster"], tasks=[arn])["tasks"][0]
    [binding] = container(task, "web")["networkBindings"]
    assert binding["containerPort"] == 8080 and 49153 <= binding["hostPort"] <= 65535
    body = urllib.request.urlopen(f"http://127.0.0.1:{binding['hostPort']}/index.html", timeout=5).read()
    assert body == b"hello-from-berth\n"
    ecs.stop_task(cluster=fleet["cluster"], task=arn, reason="test done")
    subprocess.run(cli + ["tasks-stopped", "--cluster", fleet["cluster"], "--tasks", arn], check=True, timeout=90)
    task = ecs.describe_tasks(cluster=fleet["cluster"], tasks=[arn])["tasks"][0]
    assert task["stopCode"] == "UserInitiated" and task["stoppedReason"] == "test done"


def test_memory_limit_kills_with_out_of_memory(ecs, fleet):
    hog = "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"
    d = td(ecs, fleet, [{"name": "hog", "memory": 24, "command": ["sh", "-c", hog]}])
    [t] = wait_stopped(ecs, fleet, run(ecs, fleet, d["family"]))
    c = container(t, "hog")
    assert "OutOfMemory" in (c.get("reason") or ""), c
    assert c["exitCode"] == 137


def test_essential_exit_stops_the_other_containers(ecs, fleet):
    d = td(ecs, fleet, [
        {"name": "main", "command": ["sh", "-c", "sleep 1; exit 2"]},
        {"name": "sidecar", "essential": False, "command": ["sleep", "600"], "stopTimeout": 2},
    ])
    [t] = wait_stopped(ecs, fleet, run(ecs, fleet, d["family"]))
    assert container(t, "main")["exitCode"] == 2
    assert container(t, "sidecar")["lastStatus"] == "STOPPED"
    assert t["stoppedReason"] == "Essential container in task exited"


def test_depends_on_success_and_healthy(ecs, fleet):
    d = td(ecs, fleet, [
        {"name": "migrate", "essential": False, "command": ["sh", "-c", "sleep 1; echo done > /shared/migrated"],
         "mountPoints": [{"sourceVolume": "shared", "containerPath": "/shared"}]},
        {"name": "db", "essential": False, "command": ["sh", "-c", "sleep 2; touch /shared/ready; sleep 600"],
         "mountPoints": [{"sourceVolume": "shared", "containerPath": "/shared"}], "stopTimeout": 2,
         "healthCheck": {"command": ["CMD-SHELL", "test -f /shared/ready"], "interval": 5, "retries": 3,
                         "timeout": 2, "startPeriod": 1}},
        {"name": "app", "command": ["sh", "-c", "test -f /shared/migrated && test -f /shared/ready && exit 42"],
         "mountPoints": [{"sourceVolume": "shared", "containerPath": "/shared"}],
         "dependsOn": [{"containerName": "migrate", "condition": "SUCCESS"},
                       {"containerName": "db", "condition": "HEALTHY"}]},
    ], volumes=[{"name": "shared"}])
    [t] = wait_stopped(ecs, fleet, run(ecs, fleet, d["family"]), timeout=90)
    assert container(t, "migrate")["exitCode"] == 0
    assert container(t, "app")["exitCode"] == 42, t
    assert container(t, "db")["healthStatus"] == "HEALTHY"


def test_failed_dependency_stops_the_task(ecs, fleet):
    d = td(ecs, fleet, [
        {"name": "migrate", "essential": False, "command": ["sh", "-c", "exit 1"]},
        {"name": "app", "command": ["sleep", "600"], "dependsOn": [{"containerName": "migrate", "condition": "SUCCESS"}]},
    ])
    [t] = wait_stopped(ecs, fleet, run(ecs, fleet, d["family"]))
    assert "migrate" in t["stoppedReason"]
    assert "exitCode" not in container(t, "app")


def test_stop_timeout_escalates_to_sigkill(ecs, fleet):
    d = td(ecs, fleet, [{"name": "stubborn", "command": ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"],
                         "stopTimeout": 2}])
    [arn] = run(ecs, fleet, d["family"])
    wait_running(ecs, fleet, [arn])
    began = time.time()
    ecs.stop_task(cluster=fleet["cluster"], task=arn)
    [t] = wait_stopped(ecs, fleet, [arn])
    assert time.time() - began < 20
    assert container(t, "stubborn")["exitCode"] == 137


def test_failed_pull_stops_with_task_failed_to_start(ecs, fleet):
    d = td(ecs, fleet, [{"name": "ghost", "image": f"{fleet['registry'].host}/no-such-image:1"}])
    [t] = wait_stopped(ecs, fleet, run(ecs, fleet, d["family"]))
    assert t["stopCode"] == "TaskFailedToStart"
    assert t["stoppedReason"].startswith("CannotPullContainerError"), t["stoppedReason"]


def test_token_auth_registry_pulls_with_the_agents_credentials(ecs, fleet):
    """An image by digest in a bearer-token registry: the agent with its credentials runs it;
    the agent with a wrong password fails the task with TaskFailedToStart, saying why."""
    d = td(ecs, fleet, [{"name": "app", "image": fleet["private_image"], "command": ["sleep", "600"],
                         "stopTimeout": 1}])
    on = lambda stack: [{"type": "memberOf", "expression": f"attribute:stack == {stack}"}]
    [good] = run(ecs, fleet, d["family"], placementConstraints=on("alpha"))
    [bad] = run(ecs, fleet, d["family"], placementConstraints=on("beta"))
    [t] = wait_running(ecs, fleet, [good])
    assert t["containerInstanceArn"] == fleet["agents"][0].instance_arn()
    [s] = wait_stopped(ecs, fleet, [bad])
    assert s["stopCode"] == "TaskFailedToStart", s
    reason = s["stoppedReason"]
    assert reason.startswith("CannotPullContainerError"), reason
    assert "rejected the credentials" in reason and "authentication" in reason, reason
    assert "incorrect username or password" in reason, reason
    ecs.stop_task(cluster=fleet["cluster"], task=good)
    wait_stopped(ecs, fleet, [good])


TRUST_ECS_TASKS = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


@pytest.fixture(scope="module")
def secrets(berth):
    """Secrets in berth's Secrets Manager, an execution role that may read those under one
    prefix, and one that may read none."""
    session = boto3.Session(profile_name="berth")
    sm, iam = session.client("secretsmanager"), session.client("iam")
    prefix = uid("e2e-secrets")
    reader, blind = (iam.create_role(RoleName=uid(n), AssumeRolePolicyDocument=TRUST_ECS_TASKS)["Role"]
                     for n in ("reader", "blind"))
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                                                      "Resource": f"arn:aws:secretsmanager:*:*:secret:{prefix}/*"}]}
    iam.put_role_policy(RoleName=reader["RoleName"], PolicyName="read", PolicyDocument=json.dumps(policy))
    make = lambda name, value: sm.create_secret(Name=f"{prefix}/{name}", SecretString=value)["ARN"]
    return {
        "login": make("login", json.dumps({"username": "berth", "password": "t0ken"})),
        "wrong": make("wrong", json.dumps({"username": "berth", "password": "not-it"})),
        "db": make("db", json.dumps({"user": "admin", "password": "s3cr3t-pw"})),
        "token": make("token", "tok-8c1f"),
        "reader": reader["Arn"], "blind": blind["Arn"],
    }


ON_BETA = [{"type": "memberOf", "expression": "attribute:stack == beta"}]


def test_repository_credentials_win_over_the_agents(ecs, fleet, secrets):
    """Agent b's own --registry-auth password is wrong: a container whose
    repositoryCredentials name the right login pulls and runs there; one naming a wrong
    login stops with TaskFailedToStart, saying the registry refused it."""
    def definition(secret):
        return td(ecs, fleet, [{"name": "app", "image": fleet["private_image"], "command": ["sleep", "600"],
                                "stopTimeout": 1, "repositoryCredentials": {"credentialsParameter": secret}}],
                  executionRoleArn=secrets["reader"])
    good = definition(secrets["login"])
    assert {"name": "com.amazonaws.ecs.capability.private-registry-authentication.secretsmanager"} \
        in good["requiresAttributes"]
    [ok] = run(ecs, fleet, good["family"], placementConstraints=ON_BETA)
    [bad] = run(ecs, fleet, definition(secrets["wrong"])["family"], placementConstraints=ON_BETA)
    [t] = wait_running(ecs, fleet, [ok])
    assert t["containerInstanceArn"] == fleet["agents"][1].instance_arn()
    [s] = wait_stopped(ecs, fleet, [bad])
    assert s["stopCode"] == "TaskFailedToStart", s
    assert s["stoppedReason"].startswith("CannotPullContainerError"), s["stoppedReason"]
    assert "incorrect username or password" in s["stoppedReason"], s["stoppedReason"]
    ecs.stop_task(cluster=fleet["cluster"], task=ok)
    wait_stopped(ecs, fleet, [ok])


def test_container_secrets_reach_the_environment_only(berth, ecs, fleet, secrets):
    """`secrets` (a whole value, and one JSON key) become the process's environment; the
    values are in no DescribeTasks answer and in neither the server's nor the agent's log."""
    check = '[ "$TOKEN" = tok-8c1f ] && [ "$DB_PASSWORD" = s3cr3t-pw ] && [ "$DB_USER" = admin ] || exit 7'
    d = td(ecs, fleet, [{"name": "app", "command": ["sh", "-c", check], "secrets": [
        {"name": "TOKEN", "valueFrom": secrets["token"]},
        {"name": "DB_PASSWORD", "valueFrom": f"{secrets['db']}:password::"},
        {"name": "DB_USER", "valueFrom": f"{secrets['db']}:user:AWSCURRENT:"}]}],
        executionRoleArn=secrets["reader"])
    assert {"name": "ecs.capability.secrets.asm.environment-variables"} in d["requiresAttributes"]
    [t] = wait_stopped(ecs, fleet, run(ecs, fleet, d["family"]))
    assert container(t, "app").get("exitCode") == 0, t
    paths = [berth.log_path] + [a.log_path for a in fleet["agents"]]
    logs = "".join(p.read_text(errors="replace") for p in paths)
    for value in ("s3cr3t-pw", "tok-8c1f"):
        assert value not in json.dumps(t, default=str) and value not in logs


def test_an_execution_role_without_permission_stops_the_task(ecs, fleet, secrets):
    d = td(ecs, fleet, [{"name": "app", "command": ["true"],
                         "secrets": [{"name": "TOKEN", "valueFrom": secrets["token"]}]}],
           executionRoleArn=secrets["blind"])
    [t] = wait_stopped(ecs, fleet, run(ecs, fleet, d["family"]))
    assert t["stopCode"] == "TaskFailedToStart", t
    reason = t["stoppedReason"]
    assert reason.startswith("ResourceInitializationError: unable to pull secrets or registry auth: "), reason
    assert "AccessDeniedException" in reason and "secretsmanager:GetSecretValue" in reason, reason
    assert secrets["token"] in reason and "assumed-role/" in reason, reason
    assert container(t, "app").get("exitCode") is None, t


def test_ssm_parameters_as_secrets_are_refused_at_placement(ecs, fleet, secrets):
    """berth serves no SSM: its agents do not register the SSM secrets capability."""
    d = td(ecs, fleet, [{"name": "app", "command": ["true"],
                         "secrets": [{"name": "P", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/p"}]}],
           executionRoleArn=secrets["reader"])
    assert {"name": "ecs.capability.secrets.ssm.environment-variables"} in d["requiresAttributes"]
    out = ecs.run_task(cluster=fleet["cluster"], taskDefinition=d["family"])
    assert out["tasks"] == [] and {f["reason"] for f in out["failures"]} == {"ATTRIBUTE"}


def test_placement_constraints_and_strategies(ecs, fleet):
    a, b = (ag.instance_arn() for ag in fleet["agents"])
    d = td(ecs, fleet, [{"name": "s", "command": ["sleep", "600"], "stopTimeout": 1}])
    on_beta = run(ecs, fleet, d["family"], count=2, placementConstraints=[
        {"type": "memberOf", "expression": "attribute:stack == beta"}])
    distinct = run(ecs, fleet, d["family"], count=2, group=uid("g"), placementConstraints=[{"type": "distinctInstance"}])
    zone = run(ecs, fleet, d["family"], count=1, placementConstraints=[
        {"type": "memberOf", "expression": "attribute:ecs.availability-zone == local-1a"}])
    tasks = {t["taskArn"]: t for t in ecs.describe_tasks(cluster=fleet["cluster"], tasks=on_beta + distinct + zone)["tasks"]}
    assert {tasks[t]["containerInstanceArn"] for t in on_beta} == {b}
    assert sorted(tasks[t]["containerInstanceArn"] for t in distinct) == sorted([a, b])
    assert tasks[zone[0]]["containerInstanceArn"] == a
    for arn in on_beta + distinct + zone:
        ecs.stop_task(cluster=fleet["cluster"], task=arn)
    wait_stopped(ecs, fleet, on_beta + distinct + zone)


def test_resource_failures_when_the_cluster_is_full(ecs, fleet):
    d = td(ecs, fleet, [{"name": "huge", "memory": 10_000_000, "command": ["true"]}])
    out = ecs.run_task(cluster=fleet["cluster"], taskDefinition=d["family"])
    assert out["tasks"] == []
    assert {f["reason"] for f in out["failures"]} == {"RESOURCE:MEMORY"}


def test_environment_files_are_refused_at_placement(ecs, fleet):
    """berth has no S3: its agents do not register ecs.capability.env-files.s3, so a task
    whose environment lives in S3 files is not started without it (ECS's ATTRIBUTE)."""
    files = [{"value": "arn:aws:s3:::bucket/app.env", "type": "s3"}]
    d = td(ecs, fleet, [{"name": "app", "command": ["true"], "environmentFiles": files}])
    assert {"name": "ecs.capability.env-files.s3"} in d["requiresAttributes"]
    out = ecs.run_task(cluster=fleet["cluster"], taskDefinition=d["family"])
    assert out["tasks"] == []
    assert out["failures"] and {f["reason"] for f in out["failures"]} == {"ATTRIBUTE"}


def test_sigkilled_agent_leaves_containers_running_and_reconciles(ecs, fleet):
    agent = fleet["agents"][0]
    d = td(ecs, fleet, [{"name": "long", "command": ["sleep", "600"], "stopTimeout": 1}])
    d2 = td(ecs, fleet, [{"name": "short", "command": ["sh", "-c", "sleep 4; exit 6"]}])
    where = [{"type": "memberOf", "expression": "attribute:stack == alpha"}]
    [long_arn] = run(ecs, fleet, d["family"], placementConstraints=where)
    [short_arn] = run(ecs, fleet, d2["family"], placementConstraints=where)
    wait_running(ecs, fleet, [long_arn, short_arn])
    agent.kill()
    task_id = long_arn.rsplit("/", 1)[1]
    assert _process_running(f"{task_id}-long"), "the container died with its agent"
    time.sleep(6)  # the short task exits while its agent is down
    # What a crash after a STOPPED report leaves of a task the server no longer assigns.
    ghost = "0" * 32
    (agent.data_dir / "tasks" / f"{ghost}.json").write_text("{}")
    (agent.data_dir / "volumes" / ghost / "data").mkdir(parents=True)
    agent.start()
    [short] = wait_stopped(ecs, fleet, [short_arn])
    assert container(short, "short")["exitCode"] == 6
    assert not (agent.data_dir / "tasks" / f"{ghost}.json").exists(), "the restarted agent swept the stale record"
    assert not (agent.data_dir / "volumes" / ghost).exists()
    assert (agent.data_dir / "tasks" / f"{task_id}.json").exists(), "an assigned task's record stays"
    long_task = ecs.describe_tasks(cluster=fleet["cluster"], tasks=[long_arn])["tasks"][0]
    assert long_task["lastStatus"] == "RUNNING"
    ecs.stop_task(cluster=fleet["cluster"], task=long_arn)
    wait_stopped(ecs, fleet, [long_arn])


def _process_running(container_id: str) -> bool:
    """Whether the shim of `container_id` is alive."""
    return bool(shim_pids(container_id))


def test_awsvpc_task_reports_its_eni_and_answers_on_its_address(ecs, fleet):
    d = td(ecs, fleet, [{"name": "web", "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
                         "portMappings": [{"containerPort": 8080}], "stopTimeout": 1}], networkMode="awsvpc")
    [arn] = run(ecs, fleet, d["family"])
    wait_running(ecs, fleet, [arn])
    deadline = time.time() + 10
    while True:
        task = ecs.describe_tasks(cluster=fleet["cluster"], tasks=[arn])["tasks"][0]
        if task["attachments"] or time.time() > deadline:
            break
        time.sleep(0.2)
    [eni] = task["attachments"]
    assert eni["type"] == "ElasticNetworkInterface" and eni["status"] == "ATTACHED"
    details = {kv["name"]: kv["value"] for kv in eni["details"]}
    ip = details["privateIPv4Address"]
    assert ip.startswith(f"10.{213 + NET_SLOT}.2"), ip
    assert container(task, "web")["networkInterfaces"][0]["privateIpv4Address"] == ip
    body = urllib.request.urlopen(f"http://{ip}:8080/index.html", timeout=5).read()
    assert body == b"hello-from-berth\n"
    ecs.stop_task(cluster=fleet["cluster"], task=arn)
    wait_stopped(ecs, fleet, [arn])


def test_stop_task_while_the_agent_is_down(ecs, fleet):
    agent = fleet["agents"][1]
    d = td(ecs, fleet, [{"name": "long", "command": ["sleep", "600"], "stopTimeout": 1}])
    [arn] = run(ecs, fleet, d["family"], placementConstraints=[{"type": "memberOf", "expression": "attribute:stack == beta"}])
    wait_running(ecs, fleet, [arn])
    agent.kill()
    ecs.stop_task(cluster=fleet["cluster"], task=arn, reason="while away")
    agent.start()
    [t] = wait_stopped(ecs, fleet, [arn])
    assert t["stopCode"] == "UserInitiated" and t["stoppedReason"] == "while away"
    assert not _process_running(f"{arn.rsplit('/', 1)[1]}-long")
