"""Services end to end: three real agents (runc containers), a loopback registry, and a
server of this module's own with short controller clocks (agent disconnect 3 s, instance
lost 6 s, tasks without health checks healthy 2 s after RUNNING), so that losing an agent
and killing the server can be tested in seconds. Driven by boto3 and the aws CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

import berthlib
from berthlib import BerthServer, berth_binary, uid
from fleet import Agent, Registry, build_rootfs, shim_pids, subnet, wait_registered

CLOCKS = {"BERTH_AGENT_DISCONNECT_AFTER": "3", "BERTH_INSTANCE_LOST_AFTER": "6", "BERTH_TASK_HEALTHY_AFTER": "2",
          "BERTH_RESTART_BACKOFF": "1", "BERTH_RESTART_BACKOFF_MAX": "4"}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    work = tmp_path_factory.mktemp("svc-fleet")
    env = dict(os.environ, AWS_CONFIG_FILE=str(work / "aws-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(work / "aws-credentials"), **CLOCKS)
    server = BerthServer(berth_binary(), work / "server", env=env, log_path=work / "server.log").start()
    registry = Registry(work)
    image = registry.push_rootfs(build_rootfs(work / "rootfs"), "busybox:svc")
    ecs = server.client()
    cluster = uid("svc-e2e")
    ecs.create_cluster(clusterName=cluster)
    agents = [Agent(server, cluster, work, n, subnet(30 + i), f"local-1{n}", f"name={n}").start()
              for i, n in enumerate("pqr")]
    try:
        wait_registered(ecs, cluster, agents)
        yield {"server": server, "ecs": ecs, "cluster": cluster, "image": image, "agents": agents, "work": work}
    finally:
        for arn in ecs.list_services(cluster=cluster, maxResults=100)["serviceArns"]:
            ecs.delete_service(cluster=cluster, service=arn, force=True)
        deadline = time.time() + 20
        while ecs.list_tasks(cluster=cluster)["taskArns"] and time.time() < deadline:
            time.sleep(0.5)
        for a in agents:
            a.stop()
        registry.stop()
        server.kill()


def register(fleet, command, **kw):
    c = {"name": "app", "image": fleet["image"], "memory": 32, "command": command, "stopTimeout": 1}
    c.update(kw)
    return fleet["ecs"].register_task_definition(family=uid("svcd"), containerDefinitions=[c])["taskDefinition"]


SLEEP = ["sleep", "600"]


def describe(fleet, name):
    return fleet["ecs"].describe_services(cluster=fleet["cluster"], services=[name])["services"][0]


def tasks_of(fleet, name, desired="RUNNING"):
    ecs = fleet["ecs"]
    arns = ecs.list_tasks(cluster=fleet["cluster"], serviceName=name, desiredStatus=desired)["taskArns"]
    return ecs.describe_tasks(cluster=fleet["cluster"], tasks=arns)["tasks"] if arns else []


def wait_stable(fleet, name, attempts=60):
    fleet["ecs"].get_waiter("services_stable").wait(cluster=fleet["cluster"], services=[name],
                                                    WaiterConfig={"Delay": 1, "MaxAttempts": attempts})
    return describe(fleet, name)


def wait_for(fn, timeout=60.0, what="condition"):
    return berthlib.wait_for(fn, timeout, what, every=0.3)


def running_ids(fleet, name):
    return {t["taskArn"] for t in tasks_of(fleet, name) if t["lastStatus"] == "RUNNING"}


def container_pids(container_id: str, comm: str) -> list[int]:
    """The processes named `comm` under the shim of `container_id`."""
    children: dict[int, list[int]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(pid))
    found, stack = [], [c for shim in shim_pids(container_id) for c in children.get(shim, [])]
    while stack:
        p = stack.pop()
        stack.extend(children.get(p, []))
        try:
            if open(f"/proc/{p}/comm").read().strip() == comm:
                found.append(p)
        except OSError:
            pass
    return found


def test_scale_kill_and_replace_with_services_stable_via_cli(fleet):
    ecs, cl = fleet["ecs"], fleet["cluster"]
    d = register(fleet, SLEEP)
    ecs.create_service(cluster=cl, serviceName="web", taskDefinition=d["family"], desiredCount=2)
    wait_stable(fleet, "web")
    subprocess.run(["aws", "ecs", "wait", "services-stable", "--endpoint-url", fleet["server"].endpoint,
                    "--cluster", cl, "--services", "web"], check=True, timeout=120, env=cli_env(fleet))
    s = describe(fleet, "web")
    assert (s["runningCount"], s["pendingCount"], len(s["deployments"])) == (2, 0, 1)
    # scale out
    ecs.update_service(cluster=cl, service="web", desiredCount=4)
    assert wait_stable(fleet, "web")["runningCount"] == 4
    # kill one task's process: the service replaces the task
    victim = sorted(running_ids(fleet, "web"))[0]
    pids = container_pids(f"{victim.rsplit('/', 1)[1]}-app", "sleep")
    assert pids, "no container process found for the task"
    for p in pids:
        os.kill(p, signal.SIGKILL)
    wait_for(lambda: victim not in running_ids(fleet, "web") and len(running_ids(fleet, "web")) == 4,
             what="the killed task to be replaced")
    dead = ecs.describe_tasks(cluster=cl, tasks=[victim])["tasks"][0]
    assert dead["lastStatus"] == "STOPPED" and dead["stopCode"] == "EssentialContainerExited"
    # scale in
    ecs.update_service(cluster=cl, service="web", desiredCount=1)
    wait_for(lambda: len(tasks_of(fleet, "web")) == 1, what="scale-in")
    assert wait_stable(fleet, "web")["runningCount"] == 1


def cli_env(fleet):
    a = fleet["server"].admin
    return dict(os.environ, AWS_ACCESS_KEY_ID=a["accessKeyId"], AWS_SECRET_ACCESS_KEY=a["secretAccessKey"],
                AWS_DEFAULT_REGION="us-east-1")


class Sampler(threading.Thread):
    """Samples a service's tasks continuously: the fewest healthy running tasks and the most
    live ones seen."""

    def __init__(self, fleet, name):
        super().__init__(daemon=True)
        self.fleet, self.name = fleet, name
        self.min_healthy, self.max_live, self.samples = 10**9, 0, 0
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            # a task asked to stop between the two lists shows in both: count it once
            tasks = {t["taskArn"]: t for t in tasks_of(self.fleet, self.name, "STOPPED") if t["lastStatus"] != "STOPPED"}
            tasks.update((t["taskArn"], t) for t in tasks_of(self.fleet, self.name))
            tasks = list(tasks.values())
            healthy = [t for t in tasks if t["desiredStatus"] == "RUNNING" and t["lastStatus"] == "RUNNING"
                       and t.get("healthStatus") == "HEALTHY"]
            self.min_healthy = min(self.min_healthy, len(healthy))
            self.max_live = max(self.max_live, len(tasks))
            self.samples += 1
            time.sleep(0.1)


def test_rolling_deployment_keeps_the_minimum_healthy_and_the_circuit_breaker_rolls_back(fleet):
    ecs, cl = fleet["ecs"], fleet["cluster"]
    check = {"command": ["CMD-SHELL", "true"], "interval": 5, "timeout": 2, "retries": 1}
    v1 = register(fleet, SLEEP, healthCheck=check)
    cfg = {"minimumHealthyPercent": 50, "maximumPercent": 200,
           "deploymentCircuitBreaker": {"enable": True, "rollback": True}}
    ecs.create_service(cluster=cl, serviceName="roll", taskDefinition=v1["taskDefinitionArn"], desiredCount=6,
                       deploymentConfiguration=cfg)
    wait_for(lambda: describe(fleet, "roll")["deployments"][0]["rolloutState"] == "COMPLETED", 90, "first rollout")
    v2 = ecs.register_task_definition(family=v1["family"], containerDefinitions=v1["containerDefinitions"])
    v2 = v2["taskDefinition"]["taskDefinitionArn"]
    sampler = Sampler(fleet, "roll")
    sampler.start()
    try:
        ecs.update_service(cluster=cl, service="roll", taskDefinition=v2)
        wait_for(lambda: describe(fleet, "roll")["deployments"][0]["rolloutState"] == "COMPLETED", 90, "rollout")
        s = wait_stable(fleet, "roll")
    finally:
        sampler.done.set()
        sampler.join()
    assert sampler.samples > 10
    assert sampler.min_healthy >= 3, f"healthy tasks dropped to {sampler.min_healthy} (minimum 3)"
    assert sampler.max_live <= 12, f"{sampler.max_live} tasks at once (maximum 12)"
    assert s["taskDefinition"] == v2 and {t["taskDefinitionArn"] for t in tasks_of(fleet, "roll")} == {v2}
    messages = [e["message"] for e in s["events"]]
    assert messages[0] == "(service roll) has reached a steady state."
    # a revision whose container exits at once trips the breaker, and the service rolls back
    bad = register(fleet, ["sh", "-c", "exit 3"])
    ecs.update_service(cluster=cl, service="roll", taskDefinition=bad["taskDefinitionArn"])
    wait_for(lambda: describe(fleet, "roll")["taskDefinition"] == v2, 90, "the rollback")
    s = wait_stable(fleet, "roll")
    assert s["runningCount"] == 6 and s["deployments"][0]["taskDefinition"] == v2
    messages = [e["message"] for e in s["events"]]
    assert any(m.endswith("deployment failed: tasks failed to start.") for m in messages), messages[:10]
    assert any(m.startswith("(service roll) rolling back to deployment ecs-svc/") for m in messages), messages[:10]
    assert sampler.min_healthy >= 3


def test_draining_moves_service_tasks_and_leaves_standalone_ones(fleet):
    ecs, cl = fleet["ecs"], fleet["cluster"]
    a = fleet["agents"][0].instance_arn()
    d = register(fleet, SLEEP)
    on_a = [{"type": "memberOf", "expression": "attribute:name == p"}]
    [standalone] = ecs.run_task(cluster=cl, taskDefinition=d["family"], placementConstraints=on_a)["tasks"]
    ecs.create_service(cluster=cl, serviceName="drain", taskDefinition=d["family"], desiredCount=3,
                       placementStrategy=[{"type": "spread", "field": "instanceId"}],
                       deploymentConfiguration={"minimumHealthyPercent": 100, "maximumPercent": 200})
    wait_stable(fleet, "drain")
    assert a in {t["containerInstanceArn"] for t in tasks_of(fleet, "drain")}
    ecs.update_container_instances_state(cluster=cl, containerInstances=[a], status="DRAINING")
    try:
        wait_for(lambda: a not in {t["containerInstanceArn"] for t in tasks_of(fleet, "drain")}
                 and len(running_ids(fleet, "drain")) == 3, 60, "the drain")
        s = wait_stable(fleet, "drain")
        assert s["runningCount"] == 3
        left = ecs.describe_tasks(cluster=cl, tasks=[standalone["taskArn"]])["tasks"][0]
        assert left["lastStatus"] == "RUNNING" and left["desiredStatus"] == "RUNNING"
    finally:
        ecs.update_container_instances_state(cluster=cl, containerInstances=[a], status="ACTIVE")
        ecs.stop_task(cluster=cl, task=standalone["taskArn"])
        ecs.delete_service(cluster=cl, service="drain", force=True)


def test_sigkilled_agent_loses_its_service_tasks_to_other_instances(fleet):
    ecs, cl = fleet["ecs"], fleet["cluster"]
    agent = fleet["agents"][2]
    c = agent.instance_arn()
    d = register(fleet, SLEEP)
    ecs.create_service(cluster=cl, serviceName="lose", taskDefinition=d["family"], desiredCount=3,
                       placementStrategy=[{"type": "spread", "field": "instanceId"}])
    wait_stable(fleet, "lose")
    [lost] = [t for t in tasks_of(fleet, "lose") if t["containerInstanceArn"] == c]
    lost_id = lost["taskArn"].rsplit("/", 1)[1]
    agent.kill()
    try:
        inst = lambda: ecs.describe_container_instances(cluster=cl, containerInstances=[c])["containerInstances"][0]
        wait_for(lambda: inst()["agentConnected"] is False, 40, "agentConnected false")
        wait_for(lambda: lost["taskArn"] not in running_ids(fleet, "lose")
                 and len(running_ids(fleet, "lose")) == 3, 60, "the lost task to be replaced")
        assert c not in {t["containerInstanceArn"] for t in tasks_of(fleet, "lose")}
        assert container_pids(f"{lost_id}-app", "sleep"), "the container keeps running while its agent is away"
    finally:
        agent.start()
    wait_for(lambda: inst()["agentConnected"] is True, 40, "the agent to reconnect")
    t = wait_for(lambda: (lambda t: t if t["lastStatus"] == "STOPPED" else None)(
        ecs.describe_tasks(cluster=cl, tasks=[lost["taskArn"]])["tasks"][0]), 60, "the lost task to be reported stopped")
    assert t["desiredStatus"] == "STOPPED" and t["stopCode"] == "ServiceSchedulerInitiated"
    wait_for(lambda: not container_pids(f"{lost_id}-app", "sleep"), 30, "the returned agent to stop the container")
    ecs.delete_service(cluster=cl, service="lose", force=True)


def test_server_sigkilled_mid_deployment_finishes_without_duplicates(fleet):
    ecs, cl, server = fleet["ecs"], fleet["cluster"], fleet["server"]
    d = register(fleet, SLEEP)
    cfg = {"minimumHealthyPercent": 50, "maximumPercent": 150}
    ecs.create_service(cluster=cl, serviceName="crash", taskDefinition=d["family"], desiredCount=4,
                       deploymentConfiguration=cfg)
    wait_stable(fleet, "crash")
    v2 = ecs.register_task_definition(family=d["family"], containerDefinitions=d["containerDefinitions"])
    v2 = v2["taskDefinition"]["taskDefinitionArn"]
    primary = ecs.update_service(cluster=cl, service="crash", taskDefinition=v2)["service"]["deployments"][0]["id"]
    wait_for(lambda: any(t["startedBy"] == primary for t in tasks_of(fleet, "crash")), 30, "the first new task")
    server.kill()
    server.start()
    s = wait_stable(fleet, "crash", attempts=90)
    assert s["deployments"][0]["id"] == primary and s["runningCount"] == 4
    live = tasks_of(fleet, "crash")
    assert len(live) == 4 and {t["startedBy"] for t in live} == {primary}
    assert {t["taskDefinitionArn"] for t in live} == {v2}
    assert all(t["lastStatus"] == "RUNNING" for t in live)
    stopped = tasks_of(fleet, "crash", "STOPPED")
    assert len(stopped) == 4, "exactly the four old tasks were stopped: no duplicate was started and stopped"
    wait_for(lambda: all(not container_pids(f"{t['taskArn'].rsplit('/', 1)[1]}-app", "sleep") for t in stopped),
             30, "no container left of a stopped task")
    ecs.delete_service(cluster=cl, service="crash", force=True)


def test_a_task_failing_its_health_check_is_replaced(fleet):
    ecs, cl = fleet["ecs"], fleet["cluster"]
    check = {"command": ["CMD-SHELL", "test -f /tmp/ok"], "interval": 5, "timeout": 2, "retries": 1}
    d = register(fleet, ["sh", "-c", "touch /tmp/ok; sleep 3; rm /tmp/ok; sleep 600"], healthCheck=check)
    ecs.create_service(cluster=cl, serviceName="hc", taskDefinition=d["family"], desiredCount=1)
    [first] = wait_for(lambda: tasks_of(fleet, "hc"), 30, "the first task")
    first_id = first["taskArn"].rsplit("/", 1)[1]
    t = wait_for(lambda: (lambda t: t if t["desiredStatus"] == "STOPPED" else None)(
        ecs.describe_tasks(cluster=cl, tasks=[first["taskArn"]])["tasks"][0]), 40, "the unhealthy task to be stopped")
    assert t["stopCode"] == "ServiceSchedulerInitiated" and t["stoppedReason"] == "Task failed container health checks"
    assert t["healthStatus"] == "UNHEALTHY"
    wait_for(lambda: any(t["taskArn"] != first["taskArn"] for t in tasks_of(fleet, "hc")), 30, "a replacement")
    messages = [e["message"] for e in describe(fleet, "hc")["events"]]
    assert f"(service hc) (task {first_id}) failed container health checks." in messages
    ecs.delete_service(cluster=cl, service="hc", force=True)
