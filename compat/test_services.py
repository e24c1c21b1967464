"""Services through boto3 and the aws CLI: shapes, defaults, errors, the waiters, and the
controller driven by simulated agent reports (container instances registered the way an
agent registers them, task state reported the way an agent reports it). Real containers
are in test_e2e_services.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

from berthlib import BerthServer, berth_binary, container, expect_error, uid, wait_for
from test_container_instances import register


@pytest.fixture
def cluster(ecs):
    name = uid("svc")
    ecs.create_cluster(clusterName=name)
    return name


@pytest.fixture
def family(ecs):
    name = uid("svcf")
    ecs.register_task_definition(family=name, containerDefinitions=[container("app", memory=128)])
    return name


def create(ecs, cluster, family, name=None, **kw):
    kw.setdefault("desiredCount", 0)
    return ecs.create_service(cluster=cluster, serviceName=name or uid("s"), taskDefinition=family, **kw)["service"]


def describe(ecs, cluster, name, **kw):
    return ecs.describe_services(cluster=cluster, services=[name], **kw)["services"][0]


# -- CreateService: shape and defaults ---------------------------------------------------


def test_create_service_shape_and_defaults(ecs, cluster, family, berth):
    s = create(ecs, cluster, family, name="web", desiredCount=0)
    assert s["serviceArn"] == f"arn:aws:ecs:us-east-1:{berth.account}:service/{cluster}/web"
    assert s["serviceName"] == "web" and s["clusterArn"].endswith(f":cluster/{cluster}")
    assert s["status"] == "ACTIVE" and s["desiredCount"] == 0
    assert s["runningCount"] == 0 and s["pendingCount"] == 0
    assert s["launchType"] == "EC2" and s["schedulingStrategy"] == "REPLICA"
    assert s["taskDefinition"] == berth.td_arn(family, 1)
    assert s["deploymentConfiguration"] == {
        "deploymentCircuitBreaker": {"enable": False, "rollback": False},
        "maximumPercent": 200, "minimumHealthyPercent": 100,
    }
    assert s["deploymentController"] == {"type": "ECS"}
    assert s["propagateTags"] == "NONE" and s["enableECSManagedTags"] is False and s["enableExecuteCommand"] is False
    assert s["events"] == [] and s["loadBalancers"] == [] and s["placementConstraints"] == []
    assert s["createdBy"].startswith(f"arn:aws:iam::{berth.account}:")
    assert "tags" not in s
    [d] = s["deployments"]
    assert re.fullmatch(r"ecs-svc/\d{19}", d["id"]), d["id"]
    assert d["status"] == "PRIMARY" and d["rolloutState"] == "IN_PROGRESS"
    assert d["rolloutStateReason"] == f"ECS deployment {d['id']} in progress."
    assert d["taskDefinition"] == s["taskDefinition"] and d["desiredCount"] == 0
    assert (d["runningCount"], d["pendingCount"], d["failedTasks"]) == (0, 0, 0)
    assert d["createdAt"] == s["createdAt"]


def test_zero_count_service_is_stable_at_once_via_cli(ecs, cluster, family):
    create(ecs, cluster, family, name="idle")
    subprocess.run(["aws", "--profile", "berth", "ecs", "wait", "services-stable", "--cluster", cluster,
                    "--services", "idle"], check=True, timeout=60)
    s = describe(ecs, cluster, "idle")
    [d] = s["deployments"]
    assert d["rolloutState"] == "COMPLETED" and d["rolloutStateReason"] == f"ECS deployment {d['id']} completed."
    messages = [e["message"] for e in s["events"]]
    assert messages[0] == "(service idle) has reached a steady state."
    assert messages[1] == f"(service idle) (deployment {d['id']}) deployment completed."
    assert all(re.fullmatch(r"[0-9a-f-]{36}", e["id"]) for e in s["events"])


def test_create_options_round_trip(ecs, cluster, family):
    s = create(
        ecs, cluster, family, desiredCount=0, tags=[{"key": "team", "value": "a"}],
        deploymentConfiguration={"maximumPercent": 150, "minimumHealthyPercent": 50,
                                 "deploymentCircuitBreaker": {"enable": True, "rollback": True}},
        placementConstraints=[{"type": "distinctInstance"}],
        placementStrategy=[{"type": "spread", "field": "attribute:ecs.availability-zone"}],
        healthCheckGracePeriodSeconds=30, enableExecuteCommand=True, propagateTags="SERVICE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-1"]}},
    )
    assert s["deploymentConfiguration"]["maximumPercent"] == 150
    assert s["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert s["placementConstraints"] == [{"type": "distinctInstance"}]
    assert s["placementStrategy"] == [{"type": "spread", "field": "attribute:ecs.availability-zone"}]
    assert s["healthCheckGracePeriodSeconds"] == 30 and s["enableExecuteCommand"] is True
    assert s["propagateTags"] == "SERVICE"
    assert s["networkConfiguration"]["awsvpcConfiguration"]["subnets"] == ["subnet-1"]
    tagged = describe(ecs, cluster, s["serviceName"], include=["TAGS"])
    assert tagged["tags"] == [{"key": "team", "value": "a"}]


def test_client_token_makes_create_idempotent(ecs, cluster, family):
    first = create(ecs, cluster, family, name="tok", clientToken="abc-123")
    again = create(ecs, cluster, family, name="tok", clientToken="abc-123")
    assert again["deployments"][0]["id"] == first["deployments"][0]["id"]
    expect_error(lambda: create(ecs, cluster, family, name="tok", clientToken="other"),
                 "InvalidParameterException", "Creation of service was not idempotent.")
    expect_error(lambda: create(ecs, cluster, family, name="tok"),
                 "InvalidParameterException", "not idempotent")


@pytest.mark.parametrize("kw, etype, words", [
    ({"serviceName": "bad name"}, "InvalidParameterException", ["serviceName"]),
    ({"desiredCount": -1}, "InvalidParameterException", ["desiredCount"]),
    ({"desiredCount": None}, "InvalidParameterException", ["desiredCount"]),
    ({"schedulingStrategy": "DAEMON", "desiredCount": 1}, "InvalidParameterException", ["desired count"]),
    ({"taskDefinition": "nope-never-registered"}, "ClientException", []),
    ({"taskDefinition": None}, "InvalidParameterException", ["taskDefinition"]),
    ({"launchType": "EC2", "capacityProviderStrategy": [{"capacityProvider": "x"}]},
     "InvalidParameterException", ["launch type", "capacity provider"]),
    ({"deploymentConfiguration": {"minimumHealthyPercent": 150}}, "InvalidParameterException",
     ["minimumHealthyPercent"]),
    ({"deploymentConfiguration": {"maximumPercent": 50}}, "InvalidParameterException", ["maximumPercent"]),
    ({"healthCheckGracePeriodSeconds": -5}, "InvalidParameterException", ["healthCheckGracePeriodSeconds"]),
    ({"placementStrategy": [{"type": "sideways"}]}, "InvalidParameterException", []),
    ({"schedulingStrategy": "DAEMON", "desiredCount": None, "placementStrategy": [{"type": "random"}]},
     "InvalidParameterException", ["DAEMON"]),
    ({"clientToken": "x" * 40}, "InvalidParameterException", ["clientToken"]),
    ({"loadBalancers": [{"targetGroupArn": "arn:aws:elasticloadbalancing:x", "containerName": "app",
                         "containerPort": 80}]}, "UnsupportedFeatureException", ["loadBalancers"]),
])
def test_create_rejects_bad_input(ecs_raw, cluster, family, kw, etype, words):
    req = {"cluster": cluster, "serviceName": uid("bad"), "taskDefinition": family, "desiredCount": 1}
    req.update(kw)
    req = {k: v for k, v in req.items() if v is not None}
    expect_error(lambda: ecs_raw.create_service(**req), etype, *words)


def test_unknown_cluster_is_cluster_not_found(ecs, family):
    expect_error(lambda: ecs.create_service(cluster="no-such-cluster", serviceName="x", taskDefinition=family,
                                            desiredCount=1), "ClusterNotFoundException", "Cluster not found.")
    expect_error(lambda: ecs.list_services(cluster="no-such-cluster"), "ClusterNotFoundException")


# -- Describe / List ------------------------------------------------------------------------


def test_describe_reports_missing_services(ecs, cluster, family, berth):
    create(ecs, cluster, family, name="there")
    out = ecs.describe_services(cluster=cluster, services=["there", "absent"])
    assert [s["serviceName"] for s in out["services"]] == ["there"]
    assert out["failures"] == [{"arn": f"arn:aws:ecs:us-east-1:{berth.account}:service/{cluster}/absent",
                                "reason": "MISSING"}]
    by_arn = ecs.describe_services(cluster=cluster, services=[out["services"][0]["serviceArn"]])
    assert by_arn["services"][0]["serviceName"] == "there"
    expect_error(lambda: ecs.describe_services(cluster=cluster, services=[f"s{i}" for i in range(11)]),
                 "InvalidParameterException", "services")


def test_list_services_pages_and_filters(ecs, cluster, family):
    names = sorted(f"l{i}" for i in range(5))
    for n in names:
        create(ecs, cluster, family, name=n)
    page = ecs.list_services(cluster=cluster, maxResults=2)
    assert len(page["serviceArns"]) == 2 and page["nextToken"]
    arns = ecs.get_paginator("list_services").paginate(cluster=cluster).build_full_result()["serviceArns"]
    assert sorted(a.rsplit("/", 1)[1] for a in arns) == names
    assert ecs.list_services(cluster=cluster, schedulingStrategy="DAEMON")["serviceArns"] == []
    assert len(ecs.list_services(cluster=cluster, launchType="EC2")["serviceArns"]) == 5
    expect_error(lambda: ecs.list_services(cluster=cluster, maxResults=101), "InvalidParameterException")


# -- UpdateService ---------------------------------------------------------------------------


def test_update_rescales_or_starts_a_deployment(ecs, cluster, family, berth):
    s = create(ecs, cluster, family, name="up")
    first = s["deployments"][0]["id"]
    s = ecs.update_service(cluster=cluster, service="up", desiredCount=0,
                           deploymentConfiguration={"minimumHealthyPercent": 50})["service"]
    assert [d["id"] for d in s["deployments"]] == [first]
    assert s["deploymentConfiguration"]["minimumHealthyPercent"] == 50
    assert s["deploymentConfiguration"]["maximumPercent"] == 200
    ecs.register_task_definition(family=family, containerDefinitions=[container("app", memory=64)])
    s = ecs.update_service(cluster=cluster, service=s["serviceArn"], taskDefinition=family)["service"]
    assert s["taskDefinition"] == berth.td_arn(family, 2)
    primary = s["deployments"][0]
    assert primary["status"] == "PRIMARY" and primary["id"] != first
    assert primary["taskDefinition"] == berth.td_arn(family, 2) and primary["rolloutState"] == "IN_PROGRESS"
    forced = ecs.update_service(cluster=cluster, service="up", forceNewDeployment=True)["service"]
    assert forced["deployments"][0]["id"] not in (first, primary["id"])
    ecs.get_waiter("services_stable").wait(cluster=cluster, services=["up"], WaiterConfig={"Delay": 1, "MaxAttempts": 20})
    assert len(describe(ecs, cluster, "up")["deployments"]) == 1


def test_update_errors(ecs_raw, cluster, family):
    expect_error(lambda: ecs_raw.update_service(cluster=cluster, service="ghost", desiredCount=1),
                 "ServiceNotFoundException", "Service not found.")
    create(ecs_raw, cluster, family, name="u")
    expect_error(lambda: ecs_raw.update_service(cluster=cluster, service="u", desiredCount=-2),
                 "InvalidParameterException", "desiredCount")
    expect_error(lambda: ecs_raw.update_service(cluster=cluster, service="u", taskDefinition="missing-family"),
                 "ClientException")
    expect_error(lambda: ecs_raw.update_service(cluster=cluster, service="u",
                                                deploymentConfiguration={"minimumHealthyPercent": 101}),
                 "InvalidParameterException", "minimumHealthyPercent")
    ecs_raw.delete_service(cluster=cluster, service="u")
    expect_error(lambda: ecs_raw.update_service(cluster=cluster, service="u", desiredCount=1),
                 "ServiceNotActiveException", "Service was not ACTIVE.")


# -- DeleteService ---------------------------------------------------------------------------


def test_delete_needs_force_above_zero_and_ends_inactive_via_cli(ecs, cluster, family):
    create(ecs, cluster, family, name="del", desiredCount=2)
    expect_error(lambda: ecs.delete_service(cluster=cluster, service="del"),
                 "InvalidParameterException", "The service cannot be stopped while it is scaled above 0.")
    s = ecs.delete_service(cluster=cluster, service="del", force=True)["service"]
    assert s["status"] == "DRAINING" and s["desiredCount"] == 0
    assert ecs.list_services(cluster=cluster)["serviceArns"] == []
    subprocess.run(["aws", "--profile", "berth", "ecs", "wait", "services-inactive", "--cluster", cluster,
                    "--services", "del"], check=True, timeout=60)
    assert describe(ecs, cluster, "del")["status"] == "INACTIVE"
    expect_error(lambda: ecs.delete_service(cluster=cluster, service="del"), "ServiceNotFoundException")
    again = create(ecs, cluster, family, name="del")
    assert again["status"] == "ACTIVE" and describe(ecs, cluster, "del")["status"] == "ACTIVE"


def test_delete_unknown_service(ecs, cluster):
    expect_error(lambda: ecs.delete_service(cluster=cluster, service="ghost"), "ServiceNotFoundException")


# -- the controller, with simulated agents ---------------------------------------------------


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """A server of its own with short controller clocks (tasks healthy 1 s after RUNNING,
    restart back-off from 1 s), so the controller tests finish quickly."""
    root = tmp_path_factory.mktemp("svc-quick")
    env = dict(os.environ, AWS_CONFIG_FILE=str(root / "config"), AWS_SHARED_CREDENTIALS_FILE=str(root / "creds"),
               BERTH_TASK_HEALTHY_AFTER="1", BERTH_RESTART_BACKOFF="1", BERTH_RESTART_BACKOFF_MAX="2")
    srv = BerthServer(berth_binary(), root / "data", env=env, log_path=root / "server.log").start()
    yield srv
    srv.kill()


@pytest.fixture
def sim(quick):
    """A cluster on the quick server with one instance and a task definition."""
    ecs = quick.client()
    cluster = uid("sim")
    ecs.create_cluster(clusterName=cluster)
    instance = register(ecs, cluster, memory=4096)["containerInstanceArn"]
    family = uid("simf")
    ecs.register_task_definition(family=family, containerDefinitions=[container("app", memory=128)])
    return {"ecs": ecs, "cluster": cluster, "family": family, "instance": instance, "server": quick}


def service_tasks(sim, name, desired="RUNNING"):
    ecs = sim["ecs"]
    arns = ecs.list_tasks(cluster=sim["cluster"], serviceName=name, desiredStatus=desired)["taskArns"]
    return ecs.describe_tasks(cluster=sim["cluster"], tasks=arns)["tasks"] if arns else []


def report(sim, task, status, reason=None):
    kw = {"reason": reason} if reason else {}
    sim["ecs"].submit_task_state_change(cluster=sim["cluster"], task=task["taskArn"], status=status, **kw)


def report_as_desired(sim, name):
    """Reports each of the service's tasks at its desired status, as an agent would."""
    for desired in ("RUNNING", "STOPPED"):
        for t in service_tasks(sim, name, desired=desired):
            if t["lastStatus"] != desired:
                report(sim, t, desired)


def run_all(sim, name, count):
    tasks = wait_for(lambda: (lambda t: t if len(t) == count else None)(service_tasks(sim, name)),
                     what=f"{count} tasks of {name}")
    for t in tasks:
        if t["lastStatus"] != "RUNNING":
            report(sim, t, "RUNNING")
    return tasks


def test_controller_scales_replaces_and_reaches_steady_state(sim):
    ecs, cl = sim["ecs"], sim["cluster"]
    s = ecs.create_service(cluster=cl, serviceName="web", taskDefinition=sim["family"], desiredCount=2)["service"]
    dep = s["deployments"][0]["id"]
    tasks = run_all(sim, "web", 2)
    assert {t["group"] for t in tasks} == {"service:web"} and {t["startedBy"] for t in tasks} == {dep}
    ecs.get_waiter("services_stable").wait(cluster=cl, services=["web"], WaiterConfig={"Delay": 1, "MaxAttempts": 20})
    s = describe(ecs, cl, "web")
    assert (s["runningCount"], s["pendingCount"]) == (2, 0)
    steady = "(service web) has reached a steady state."
    wait_for(lambda: describe(ecs, cl, "web")["events"][0]["message"] == steady, what="the steady-state event")
    messages = [e["message"] for e in describe(ecs, cl, "web")["events"]]
    ids = sorted(t["taskArn"].rsplit("/", 1)[1] for t in tasks)
    started = [m for m in messages if m.startswith("(service web) has started 2 tasks:")]
    assert started and sorted(re.findall(r"\(task ([0-9a-f]{32})\)", started[0])) == ids
    # a task that dies is replaced
    report(sim, tasks[0], "STOPPED", reason="Essential container in task exited")
    run_all(sim, "web", 2)
    assert tasks[0]["taskArn"] not in [t["taskArn"] for t in service_tasks(sim, "web")]
    # scale out, then in
    ecs.update_service(cluster=cl, service="web", desiredCount=3)
    run_all(sim, "web", 3)
    ecs.update_service(cluster=cl, service="web", desiredCount=1)
    wait_for(lambda: len(service_tasks(sim, "web")) == 1, what="scale-in to 1")
    stopping = service_tasks(sim, "web", desired="STOPPED")
    scaled = [t for t in stopping if t.get("stopCode") == "ServiceSchedulerInitiated"]
    assert len(scaled) == 2, stopping
    assert all(t["stoppedReason"] == f"Scaling activity initiated by (deployment {dep})" for t in scaled)


def test_scale_in_spares_protected_tasks(sim):
    ecs, cl = sim["ecs"], sim["cluster"]
    ecs.create_service(cluster=cl, serviceName="prot", taskDefinition=sim["family"], desiredCount=3)
    tasks = run_all(sim, "prot", 3)
    keep = [t["taskArn"] for t in tasks[:2]]
    out = ecs.update_task_protection(cluster=cl, tasks=keep, protectionEnabled=True, expiresInMinutes=60)
    assert out["failures"] == [] and {p["taskArn"] for p in out["protectedTasks"]} == set(keep)
    assert all(p["protectionEnabled"] for p in out["protectedTasks"])
    exp = out["protectedTasks"][0]["expirationDate"].timestamp()
    assert abs(exp - (time.time() + 3600)) < 60
    got = ecs.get_task_protection(cluster=cl, tasks=keep + [tasks[2]["taskArn"]])
    assert [p["protectionEnabled"] for p in got["protectedTasks"]] == [True, True, False]
    ecs.update_service(cluster=cl, service="prot", desiredCount=2)
    wait_for(lambda: len(service_tasks(sim, "prot")) == 2, what="scale-in")
    assert sorted(t["taskArn"] for t in service_tasks(sim, "prot")) == sorted(keep)
    # protected tasks are left alone even when that keeps the service above its count
    ecs.update_service(cluster=cl, service="prot", desiredCount=1)
    time.sleep(1.5)
    assert len(service_tasks(sim, "prot")) == 2
    cleared = ecs.update_task_protection(cluster=cl, tasks=keep[:1], protectionEnabled=False)
    assert cleared["protectedTasks"][0]["protectionEnabled"] is False
    assert "expirationDate" not in cleared["protectedTasks"][0]
    wait_for(lambda: [t["taskArn"] for t in service_tasks(sim, "prot")] == keep[1:], what="unprotected stopped")


def test_task_protection_errors(sim):
    ecs, cl = sim["ecs"], sim["cluster"]
    [standalone] = ecs.run_task(cluster=cl, taskDefinition=sim["family"])["tasks"]
    out = ecs.update_task_protection(cluster=cl, tasks=[standalone["taskArn"], "0" * 32], protectionEnabled=True)
    assert out["protectedTasks"] == []
    assert [f["reason"] for f in out["failures"]] == ["TASK_NOT_VALID", "MISSING"]
    assert out["failures"][1]["arn"] == "0" * 32
    expect_error(lambda: ecs.update_task_protection(cluster=cl, tasks=[standalone["taskArn"]],
                                                    protectionEnabled=True, expiresInMinutes=3000),
                 "InvalidParameterException", "expiresInMinutes")
    expect_error(lambda: ecs.get_task_protection(cluster="no-such-cluster", tasks=["x"]), "ClusterNotFoundException")


def test_rolling_update_and_circuit_breaker_rollback(sim, berth):
    ecs, cl, fam = sim["ecs"], sim["cluster"], sim["family"]
    cfg = {"minimumHealthyPercent": 50, "maximumPercent": 200,
           "deploymentCircuitBreaker": {"enable": True, "rollback": True}}
    first = ecs.create_service(cluster=cl, serviceName="roll", taskDefinition=fam, desiredCount=2,
                               deploymentConfiguration=cfg)["service"]["deployments"][0]["id"]
    old = run_all(sim, "roll", 2)
    wait_for(lambda: describe(ecs, cl, "roll")["deployments"][0]["rolloutState"] == "COMPLETED",
             what="the first deployment to complete")
    ecs.register_task_definition(family=fam, containerDefinitions=[container("app", memory=128)])
    second = ecs.update_service(cluster=cl, service="roll", taskDefinition=fam)["service"]["deployments"][0]["id"]
    # every task of the new revision fails: the breaker trips after 3 and rolls back
    failed = set()
    def fail_new():
        for t in service_tasks(sim, "roll"):
            if t["startedBy"] == second and t["taskArn"] not in failed:
                report(sim, t, "STOPPED", reason="Essential container in task exited")
                failed.add(t["taskArn"])
        d = describe(ecs, cl, "roll")["deployments"]
        return d if d[0]["id"] != second else None
    deps = wait_for(fail_new, timeout=30, what="the circuit breaker")
    assert len(failed) >= 3
    primary = deps[0]
    assert primary["id"] not in (first, second) and primary["taskDefinition"].endswith(f"{fam}:1")
    assert primary["rolloutStateReason"] == f"ECS deployment circuit breaker: rolling back to deploymentId {first}."
    for failing in (d for d in deps if d["id"] == second):  # listed until its tasks are gone
        assert failing["status"] == "ACTIVE" and failing["rolloutState"] == "FAILED"
        assert failing["rolloutStateReason"] == "ECS deployment circuit breaker: tasks failed to start."
    messages = [e["message"] for e in describe(ecs, cl, "roll")["events"]]
    back = messages.index(f"(service roll) rolling back to deployment {first}.")
    assert messages[back + 1] == f"(service roll) (deployment {second}) deployment failed: tasks failed to start."
    # minimumHealthyPercent 50 kept one old task running throughout; the rollback replaces it
    assert len([t for t in service_tasks(sim, "roll") if t["startedBy"] == first]) == 1
    assert len([t for t in old if t["taskArn"] in [x["taskArn"] for x in service_tasks(sim, "roll")]]) == 1
    def settle():
        report_as_desired(sim, "roll")
        s = describe(ecs, cl, "roll")
        return s if len(s["deployments"]) == 1 and s["runningCount"] == 2 else None
    s = wait_for(settle, timeout=30, what="the rollback to settle")
    assert s["deployments"][0]["id"] == primary["id"] and s["taskDefinition"].endswith(f"{fam}:1")
    assert {t["startedBy"] for t in service_tasks(sim, "roll")} == {primary["id"]}
    # the history: the failed service deployment was rolled back, the rollback opened none
    briefs = wait_for(lambda: (lambda b: b if b[0]["status"] == "ROLLBACK_SUCCESSFUL" else None)(
        deployments_of(ecs, cl, "roll")), what="ROLLBACK_SUCCESSFUL")
    assert [b["status"] for b in briefs] == ["ROLLBACK_SUCCESSFUL", "SUCCESSFUL"]
    [failed_sd] = ecs.describe_service_deployments(serviceDeploymentArns=[briefs[0]["serviceDeploymentArn"]])[
        "serviceDeployments"]
    assert failed_sd["deploymentCircuitBreaker"]["status"] == "TRIGGERED"
    assert failed_sd["rollback"]["serviceRevisionArn"] == briefs[1]["targetServiceRevisionArn"]


def test_failing_tasks_back_off_with_an_event(sim):
    ecs, cl = sim["ecs"], sim["cluster"]
    ecs.create_service(cluster=cl, serviceName="crash", taskDefinition=sim["family"], desiredCount=1)
    def crash():
        for t in service_tasks(sim, "crash"):
            report(sim, t, "STOPPED", reason="Essential container in task exited")
        msgs = [e["message"] for e in describe(ecs, cl, "crash")["events"]]
        return msgs if any("is unable to consistently start tasks successfully" in m for m in msgs) else None
    wait_for(crash, timeout=30, what="the back-off event")
    stopped = service_tasks(sim, "crash", desired="STOPPED")
    assert len(stopped) >= 3


def test_daemon_runs_one_task_per_matching_instance_including_new_ones(sim):
    ecs, cl = sim["ecs"], sim["cluster"]
    second = register(ecs, cl, memory=4096, extra=[{"name": "role", "value": "edge"}])["containerInstanceArn"]
    s = ecs.create_service(cluster=cl, serviceName="agentd", taskDefinition=sim["family"],
                           schedulingStrategy="DAEMON")["service"]
    assert s["schedulingStrategy"] == "DAEMON"
    assert (s["deploymentConfiguration"]["minimumHealthyPercent"], s["deploymentConfiguration"]["maximumPercent"]) \
        == (0, 100)
    def on(instances):
        tasks = service_tasks(sim, "agentd")
        return sorted(t["containerInstanceArn"] for t in tasks) == sorted(instances)
    wait_for(lambda: on([sim["instance"], second]), what="one task per instance")
    third = register(ecs, cl, memory=4096)["containerInstanceArn"]
    wait_for(lambda: on([sim["instance"], second, third]), what="a task on the instance that joined")
    wait_for(lambda: describe(ecs, cl, "agentd")["desiredCount"] == 3, what="desiredCount 3")
    ecs.update_container_instances_state(cluster=cl, containerInstances=[third], status="DRAINING")
    wait_for(lambda: on([sim["instance"], second]), what="the draining instance's task stopped")
    ecs.update_service(cluster=cl, service="agentd",
                       placementConstraints=[{"type": "memberOf", "expression": "attribute:role == edge"}])
    wait_for(lambda: on([second]), what="only the instance matching the constraint")
    expect_error(lambda: ecs.update_service(cluster=cl, service="agentd", desiredCount=2),
                 "InvalidParameterException", "desired count")
    assert ecs.delete_service(cluster=cl, service="agentd")["service"]["status"] == "DRAINING"


def test_cluster_counts_services_and_cannot_be_deleted_with_them(ecs, cluster, family):
    create(ecs, cluster, family, name="held")
    assert ecs.describe_clusters(clusters=[cluster])["clusters"][0]["activeServicesCount"] == 1
    expect_error(lambda: ecs.delete_cluster(cluster=cluster), "ClusterContainsServicesException", "Services")
    ecs.delete_service(cluster=cluster, service="held")
    ecs.get_waiter("services_inactive").wait(cluster=cluster, services=["held"],
                                             WaiterConfig={"Delay": 1, "MaxAttempts": 20})
    assert ecs.describe_clusters(clusters=[cluster])["clusters"][0]["activeServicesCount"] == 0
    assert ecs.delete_cluster(cluster=cluster)["cluster"]["status"] == "INACTIVE"


def test_a_service_keeps_scaling_a_deregistered_definition(sim):
    ecs, cl = sim["ecs"], sim["cluster"]
    ecs.create_service(cluster=cl, serviceName="old", taskDefinition=sim["family"], desiredCount=1)
    run_all(sim, "old", 1)
    ecs.deregister_task_definition(taskDefinition=f"{sim['family']}:1")
    ecs.update_service(cluster=cl, service="old", desiredCount=2)
    run_all(sim, "old", 2)
    expect_error(lambda: ecs.create_service(cluster=cl, serviceName="new", taskDefinition=f"{sim['family']}:1",
                                            desiredCount=1), "ClientException", "inactive")


# -- service deployments and revisions ------------------------------------------------------


def deployments_of(ecs, cl, name, **kw):
    return ecs.list_service_deployments(cluster=cl, service=name, **kw)["serviceDeployments"]


def test_zero_count_service_has_one_successful_deployment_via_cli(ecs, cluster, family):
    s = create(ecs, cluster, family, name="hist")
    subprocess.run(["aws", "--profile", "berth", "ecs", "wait", "services-stable", "--cluster", cluster,
                    "--services", "hist"], check=True, timeout=60)
    out = subprocess.run(["aws", "--profile", "berth", "ecs", "list-service-deployments", "--cluster", cluster,
                          "--service", "hist"], check=True, timeout=60, capture_output=True, text=True)
    [brief] = json.loads(out.stdout)["serviceDeployments"]
    assert brief["status"] == "SUCCESSFUL" and brief["serviceArn"] == s["serviceArn"]
    assert brief["clusterArn"] == s["clusterArn"] and "finishedAt" in brief
    prefix = s["serviceArn"].replace(":service/", ":service-deployment/") + "/"
    assert brief["serviceDeploymentArn"].startswith(prefix)
    assert re.fullmatch(re.escape(s["serviceArn"].replace(":service/", ":service-revision/")) + r"/\d+",
                        brief["targetServiceRevisionArn"])
    [rev] = ecs.describe_service_revisions(serviceRevisionArns=[brief["targetServiceRevisionArn"]])["serviceRevisions"]
    assert rev["taskDefinition"] == s["taskDefinition"] and rev["launchType"] == "EC2"
    assert rev["serviceArn"] == s["serviceArn"]
    assert deployments_of(ecs, cluster, "hist", status=["IN_PROGRESS"]) == []


def test_service_deployment_errors(ecs_raw, cluster, family, berth):
    ecs = ecs_raw
    create(ecs, cluster, family, name="herr")
    [brief] = deployments_of(ecs, cluster, "herr")
    missing = brief["serviceDeploymentArn"][:-3] + "zzz"
    out = ecs.describe_service_deployments(serviceDeploymentArns=[brief["serviceDeploymentArn"], missing, "junk"])
    assert [d["serviceDeploymentArn"] for d in out["serviceDeployments"]] == [brief["serviceDeploymentArn"]]
    assert [(f["arn"], f["reason"]) for f in out["failures"]] == [(missing, "MISSING"), ("junk", "MISSING")]
    expect_error(lambda: ecs.describe_service_deployments(serviceDeploymentArns=[]),
                 "InvalidParameterException", "serviceDeploymentArns")
    expect_error(lambda: deployments_of(ecs, cluster, "absent"), "ServiceNotFoundException")
    expect_error(lambda: deployments_of(ecs, "no-such-cluster", "herr"), "ClusterNotFoundException")
    expect_error(lambda: deployments_of(ecs, cluster, "herr", maxResults=0), "InvalidParameterException", "maxResults")
    expect_error(lambda: ecs.stop_service_deployment(serviceDeploymentArn=missing),
                 "ServiceDeploymentNotFoundException")
    expect_error(lambda: ecs.stop_service_deployment(serviceDeploymentArn="junk"),
                 "InvalidParameterException", "serviceDeploymentArn")
    wait_for(lambda: deployments_of(ecs, cluster, "herr")[0]["status"] == "SUCCESSFUL", what="the deployment to end")
    expect_error(lambda: ecs.stop_service_deployment(serviceDeploymentArn=brief["serviceDeploymentArn"]),
                 "ConflictException", "SUCCESSFUL")


def test_service_deployments_record_updates_and_a_stop_rolls_back(sim):
    ecs, cl, fam = sim["ecs"], sim["cluster"], sim["family"]
    ecs.create_service(cluster=cl, serviceName="hstop", taskDefinition=fam, desiredCount=1)
    run_all(sim, "hstop", 1)
    wait_for(lambda: deployments_of(ecs, cl, "hstop")[0]["status"] == "SUCCESSFUL", what="the first deployment")
    [first] = deployments_of(ecs, cl, "hstop")
    ecs.register_task_definition(family=fam, containerDefinitions=[container("app", memory=128)])
    ecs.update_service(cluster=cl, service="hstop", taskDefinition=fam)
    second, older = deployments_of(ecs, cl, "hstop")
    assert older["serviceDeploymentArn"] == first["serviceDeploymentArn"] and older["status"] == "SUCCESSFUL"
    assert second["status"] == "IN_PROGRESS"
    assert [b["serviceDeploymentArn"] for b in deployments_of(ecs, cl, "hstop", maxResults=1)] == \
        [second["serviceDeploymentArn"]]
    page = ecs.list_service_deployments(cluster=cl, service="hstop", maxResults=1)
    rest = ecs.list_service_deployments(cluster=cl, service="hstop", nextToken=page["nextToken"])
    assert [b["serviceDeploymentArn"] for b in rest["serviceDeployments"]] == [first["serviceDeploymentArn"]]
    [full] = ecs.describe_service_deployments(serviceDeploymentArns=[second["serviceDeploymentArn"]])[
        "serviceDeployments"]
    assert full["targetServiceRevision"]["arn"] == second["targetServiceRevisionArn"]
    assert [r["arn"] for r in full["sourceServiceRevisions"]] == [first["targetServiceRevisionArn"]]
    assert full["deploymentConfiguration"]["maximumPercent"] == 200
    assert full["deploymentCircuitBreaker"]["status"] == "DISABLED"
    [rev] = ecs.describe_service_revisions(serviceRevisionArns=[second["targetServiceRevisionArn"]])[
        "serviceRevisions"]
    assert rev["taskDefinition"].endswith(f"{fam}:2")
    out = ecs.stop_service_deployment(serviceDeploymentArn=second["serviceDeploymentArn"], stopType="ROLLBACK")
    assert out["serviceDeploymentArn"] == second["serviceDeploymentArn"]
    [stopping] = ecs.describe_service_deployments(serviceDeploymentArns=[second["serviceDeploymentArn"]])[
        "serviceDeployments"]
    assert stopping["status"] in ("ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS")
    assert stopping["rollback"]["serviceRevisionArn"] == first["targetServiceRevisionArn"]
    # a second stop of a stop under way is answered as is
    ecs.stop_service_deployment(serviceDeploymentArn=second["serviceDeploymentArn"])
    assert describe(ecs, cl, "hstop")["taskDefinition"].endswith(f"{fam}:1")

    def settle():
        report_as_desired(sim, "hstop")
        d = ecs.describe_service_deployments(serviceDeploymentArns=[second["serviceDeploymentArn"]])[
            "serviceDeployments"][0]
        return d if d["status"] == "ROLLBACK_SUCCESSFUL" else None
    done = wait_for(settle, timeout=30, what="the rollback to succeed")
    assert "finishedAt" in done and done["statusReason"].startswith("Service deployment stopped by")
    assert len(deployments_of(ecs, cl, "hstop")) == 2  # a rollback opens no service deployment
