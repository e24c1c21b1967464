"""The tasks API on the server side, through boto3, with container instances registered
the way an agent registers them. What the agent does with the tasks (real containers) is
covered by the end-to-end suite; here: placement, resource accounting, failures, StopTask,
DescribeTasks and ListTasks."""

from __future__ import annotations

import pytest

from berthlib import container, expect_error, uid
from test_container_instances import register


@pytest.fixture
def cluster(ecs):
    name = uid("tasks")
    ecs.create_cluster(clusterName=name)
    return name


@pytest.fixture
def family(ecs):
    name = uid("tdf")
    ecs.register_task_definition(family=name, containerDefinitions=[container("app", memory=512, cpu=256)])
    return name


def remaining(ecs, cluster, arn, name):
    ci = ecs.describe_container_instances(cluster=cluster, containerInstances=[arn])["containerInstances"][0]
    return {r["name"]: r for r in ci["remainingResources"]}[name]


def test_run_task_places_and_reserves(ecs, cluster, family, berth):
    arn = register(ecs, cluster, memory=2048)["containerInstanceArn"]
    out = ecs.run_task(cluster=cluster, taskDefinition=family, count=2, startedBy="me")
    assert out["failures"] == []
    tasks = out["tasks"]
    assert len(tasks) == 2
    t = tasks[0]
    assert t["taskArn"].startswith(f"arn:aws:ecs:us-east-1:{berth.account}:task/{cluster}/")
    assert t["clusterArn"].endswith(f":cluster/{cluster}")
    assert t["containerInstanceArn"] == arn
    assert t["desiredStatus"] == "RUNNING" and t["lastStatus"] in ("PROVISIONING", "PENDING")
    assert t["launchType"] == "EC2" and t["group"] == f"family:{family}" and t["startedBy"] == "me"
    assert t["taskDefinitionArn"].endswith(f":task-definition/{family}:1")
    assert [c["name"] for c in t["containers"]] == ["app"]
    assert remaining(ecs, cluster, arn, "MEMORY")["integerValue"] == 2048 - 2 * 512
    assert remaining(ecs, cluster, arn, "CPU")["integerValue"] == 2048 - 2 * 256
    ci = ecs.describe_container_instances(cluster=cluster, containerInstances=[arn])["containerInstances"][0]
    assert ci["pendingTasksCount"] == 2


def test_run_task_reports_resource_failures_when_full(ecs, cluster, family):
    register(ecs, cluster, memory=600)
    out = ecs.run_task(cluster=cluster, taskDefinition=family, count=2)
    assert len(out["tasks"]) == 1
    assert [f["reason"] for f in out["failures"]] == ["RESOURCE:MEMORY"]


def test_run_task_with_no_instances(ecs, cluster, family):
    expect_error(lambda: ecs.run_task(cluster=cluster, taskDefinition=family), ("InvalidParameterException",),
                 "No Container Instances were found in your cluster.", ci=False)


def test_run_task_errors(ecs, cluster, family):
    expect_error(lambda: ecs.run_task(cluster=cluster, taskDefinition=family, count=11), ("InvalidParameterException",))
    expect_error(lambda: ecs.run_task(cluster=cluster, taskDefinition=uid("nope")), ("ClientException",))
    expect_error(lambda: ecs.run_task(cluster=uid("nope"), taskDefinition=family), ("ClusterNotFoundException",))
    expect_error(lambda: ecs.run_task(cluster=cluster, taskDefinition=family,
                                      overrides={"containerOverrides": [{"name": "ghost", "command": ["x"]}]}),
                 ("InvalidParameterException",), "ghost")
    ecs.deregister_task_definition(taskDefinition=f"{family}:1")
    expect_error(lambda: ecs.run_task(cluster=cluster, taskDefinition=f"{family}:1"), ("ClientException",))


def test_member_of_and_distinct_instance(ecs, cluster, family):
    a = register(ecs, cluster, zone="us-east-1a")["containerInstanceArn"]
    b = register(ecs, cluster, zone="us-east-1b")["containerInstanceArn"]
    out = ecs.run_task(cluster=cluster, taskDefinition=family, count=3, placementConstraints=[
        {"type": "memberOf", "expression": "attribute:ecs.availability-zone == us-east-1b"}])
    assert {t["containerInstanceArn"] for t in out["tasks"]} == {b}
    out = ecs.run_task(cluster=cluster, taskDefinition=family, count=2, group=uid("grp"),
                       placementConstraints=[{"type": "distinctInstance"}])
    assert sorted(t["containerInstanceArn"] for t in out["tasks"]) == sorted([a, b])


def test_binpack_and_spread(ecs, cluster, family):
    small = register(ecs, cluster, memory=1024, zone="us-east-1a")["containerInstanceArn"]
    big = register(ecs, cluster, memory=8192, zone="us-east-1b")["containerInstanceArn"]
    out = ecs.run_task(cluster=cluster, taskDefinition=family, count=2,
                       placementStrategy=[{"type": "binpack", "field": "memory"}])
    assert {t["containerInstanceArn"] for t in out["tasks"]} == {small}
    out = ecs.run_task(cluster=cluster, taskDefinition=family, count=2, group=uid("sp"),
                       placementStrategy=[{"type": "spread", "field": "attribute:ecs.availability-zone"}])
    # small is full (2 x 512 of 1024): both land on big; spread may not overfill.
    assert {t["containerInstanceArn"] for t in out["tasks"]} == {big}
    expect_error(lambda: ecs.run_task(cluster=cluster, taskDefinition=family,
                                      placementStrategy=[{"type": "binpack", "field": "disk"}]),
                 ("InvalidParameterException",))


def test_required_attributes_decide_placement(ecs, cluster):
    """A definition's requiresAttributes (here from a health check) must be on the
    instance: an instance without them fails the copy with ATTRIBUTE."""
    family = uid("req")
    health = {"command": ["CMD", "true"]}
    td = ecs.register_task_definition(family=family, containerDefinitions=[
        container("app", memory=128, healthCheck=health)])["taskDefinition"]
    required = sorted(a["name"] for a in td["requiresAttributes"])
    assert "ecs.capability.container-health-check" in required
    register(ecs, cluster)
    out = ecs.run_task(cluster=cluster, taskDefinition=family)
    assert out["tasks"] == [] and [f["reason"] for f in out["failures"]] == ["ATTRIBUTE"]
    capable = register(ecs, cluster, extra=[{"name": n} for n in required])["containerInstanceArn"]
    out = ecs.run_task(cluster=cluster, taskDefinition=family, count=3)
    assert out["failures"] == [] and {t["containerInstanceArn"] for t in out["tasks"]} == {capable}


def test_start_task_on_named_instance(ecs, cluster, family):
    register(ecs, cluster)
    b = register(ecs, cluster)["containerInstanceArn"]
    out = ecs.start_task(cluster=cluster, taskDefinition=family, containerInstances=[b.rsplit("/", 1)[1]])
    assert [t["containerInstanceArn"] for t in out["tasks"]] == [b]


def test_stop_describe_list(ecs, cluster, family):
    register(ecs, cluster)
    task = ecs.run_task(cluster=cluster, taskDefinition=family, startedBy="lister")["tasks"][0]
    arn = task["taskArn"]
    assert arn in ecs.list_tasks(cluster=cluster)["taskArns"]
    assert ecs.list_tasks(cluster=cluster, family=family)["taskArns"] == [arn]
    assert ecs.list_tasks(cluster=cluster, startedBy="lister")["taskArns"] == [arn]
    assert ecs.list_tasks(cluster=cluster, startedBy="nobody")["taskArns"] == []
    stopped = ecs.stop_task(cluster=cluster, task=arn, reason="enough")["task"]
    assert stopped["desiredStatus"] == "STOPPED" and stopped["stoppedReason"] == "enough"
    assert stopped["stopCode"] == "UserInitiated"
    assert ecs.list_tasks(cluster=cluster, family=family)["taskArns"] == []
    assert ecs.list_tasks(cluster=cluster, family=family, desiredStatus="STOPPED")["taskArns"] == [arn]
    described = ecs.describe_tasks(cluster=cluster, tasks=[arn, "0" * 32])
    assert [t["taskArn"] for t in described["tasks"]] == [arn]
    assert described["failures"][0]["reason"] == "MISSING"
    expect_error(lambda: ecs.stop_task(cluster=cluster, task="0" * 32), ("InvalidParameterException",))


def test_task_tags(ecs, cluster, family):
    register(ecs, cluster)
    arn = ecs.run_task(cluster=cluster, taskDefinition=family, tags=[{"key": "k", "value": "v"}])["tasks"][0]["taskArn"]
    got = ecs.describe_tasks(cluster=cluster, tasks=[arn], include=["TAGS"])["tasks"][0]
    assert got["tags"] == [{"key": "k", "value": "v"}]
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "k", "value": "v"}]


def test_propagate_and_managed_tags(ecs, cluster):
    register(ecs, cluster)
    fam = uid("tagged")
    ecs.register_task_definition(family=fam, containerDefinitions=[container("app", memory=64)],
                                 tags=[{"key": "team", "value": "web"}])
    plain = ecs.run_task(cluster=cluster, taskDefinition=fam, tags=[{"key": "k", "value": "v"}])["tasks"][0]
    assert ecs.list_tags_for_resource(resourceArn=plain["taskArn"])["tags"] == [{"key": "k", "value": "v"}]
    prop = ecs.run_task(cluster=cluster, taskDefinition=fam, propagateTags="TASK_DEFINITION",
                        enableECSManagedTags=True)["tasks"][0]
    tags = {t["key"]: t["value"] for t in ecs.list_tags_for_resource(resourceArn=prop["taskArn"])["tags"]}
    assert tags == {"team": "web", "aws:ecs:clusterName": cluster}


def test_run_task_client_token_is_idempotent(ecs, cluster, family):
    register(ecs, cluster)
    token = uid("tok")
    first = ecs.run_task(cluster=cluster, taskDefinition=family, count=2, clientToken=token)["tasks"]
    again = ecs.run_task(cluster=cluster, taskDefinition=family, count=2, clientToken=token)["tasks"]
    assert sorted(t["taskArn"] for t in again) == sorted(t["taskArn"] for t in first)
    assert len(ecs.list_tasks(cluster=cluster, family=family)["taskArns"]) == 2
    other = ecs.run_task(cluster=cluster, taskDefinition=family, clientToken=uid("tok"))["tasks"]
    assert other[0]["taskArn"] not in {t["taskArn"] for t in first}
