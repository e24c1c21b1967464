"""Fargate mode through the API, no containers: the checks ECS makes of Fargate task
definitions and launches, what Fargate tasks report, and the capacity provider operations.
Managed capacity is registered here the way berth's managed agent registers it."""

from __future__ import annotations

import pytest

from berthlib import container, expect_error, uid
from test_container_instances import register

POOL = "berth:fargate"
NETWORK = {"awsvpcConfiguration": {"subnets": ["subnet-1"], "securityGroups": ["sg-1"]}}


@pytest.fixture(scope="module")
def capacity(ecs):
    """One managed instance with 4 vCPU / 8 GiB, registered in the hidden pool with the
    attributes berth's agent reports."""
    extra = [{"name": n} for n in ("ecs.capability.task-eni", "com.amazonaws.ecs.capability.docker-remote-api.1.18",
                                   "com.amazonaws.ecs.capability.docker-remote-api.1.17")]
    return register(ecs, POOL, cpu=4096, memory=8192, extra=extra)["containerInstanceArn"]


@pytest.fixture
def cluster(ecs):
    name = uid("fg")
    ecs.create_cluster(clusterName=name)
    return name


def fargate_family(ecs, cpu="256", memory="512", **kw):
    family = uid("fgtd")
    ecs.register_task_definition(family=family, containerDefinitions=[container("app")],
                                 requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu=cpu, memory=memory,
                                 **kw)
    return family


@pytest.mark.parametrize("cpu,memory", [("512", "8192"), ("256", "4096"), ("1024", "1024"), ("128", "512")])
def test_invalid_fargate_sizes_are_refused_with_ecs_message(ecs, cpu, memory):
    expect_error(lambda: fargate_family(ecs, cpu=cpu, memory=memory), "ClientException",
                 f"No Fargate configuration exists for given values: {cpu} CPU, {memory} memory")


def test_fargate_definitions_need_awsvpc_and_task_size(ecs):
    family = uid("fgtd")
    expect_error(lambda: ecs.register_task_definition(
        family=family, containerDefinitions=[container("app")], requiresCompatibilities=["FARGATE"],
        networkMode="bridge", cpu="256", memory="512"), "ClientException", "awsvpc")
    expect_error(lambda: ecs.register_task_definition(
        family=family, containerDefinitions=[container("app")], requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc", memory="512"), "ClientException", "'cpu'")
    expect_error(lambda: ecs.register_task_definition(
        family=family, containerDefinitions=[container("app", privileged=True)], requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc", cpu="256", memory="512"), "ClientException", "privileged")


def test_run_task_checks_fargate_launches(ecs, cluster, capacity):
    family = fargate_family(ecs)
    expect_error(lambda: ecs.run_task(cluster=cluster, taskDefinition=family, launchType="FARGATE"),
                 "InvalidParameterException", "Network Configuration must be provided when networkMode 'awsvpc'")
    expect_error(lambda: ecs.run_task(cluster=cluster, taskDefinition=family, launchType="FARGATE",
                                      networkConfiguration={"awsvpcConfiguration": {"subnets": []}}),
                 "InvalidParameterException", "subnets")
    expect_error(lambda: ecs.run_task(cluster=cluster, taskDefinition=family, launchType="FARGATE",
                                      networkConfiguration=NETWORK, platformVersion="0.9.9"),
                 "InvalidParameterException", "platform version")
    expect_error(lambda: ecs.run_task(cluster=cluster, taskDefinition=family, launchType="FARGATE",
                                      networkConfiguration=NETWORK,
                                      capacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}]),
                 "InvalidParameterException", "launch type and capacity provider strategy")
    expect_error(lambda: ecs.run_task(cluster=cluster, taskDefinition=family, networkConfiguration=NETWORK,
                                      capacityProviderStrategy=[{"capacityProvider": "nope", "weight": 1}]),
                 "InvalidParameterException", "nope")
    expect_error(lambda: ecs.run_task(cluster=cluster, taskDefinition=family, launchType="FARGATE",
                                      networkConfiguration=NETWORK, overrides={"cpu": "256", "memory": "4096"}),
                 "ClientException", "No Fargate configuration exists for given values: 256 CPU, 4096 memory")
    ec2_only = uid("ec2")
    ecs.register_task_definition(family=ec2_only, containerDefinitions=[container("app")])
    expect_error(lambda: ecs.run_task(cluster=cluster, taskDefinition=ec2_only, launchType="FARGATE",
                                      networkConfiguration=NETWORK),
                 "InvalidParameterException", "does not support launch_type FARGATE")


def test_fargate_task_shape_and_hidden_capacity(ecs, cluster, capacity):
    family = fargate_family(ecs, cpu="1024", memory="2048", ephemeralStorage={"sizeInGiB": 30})
    out = ecs.run_task(cluster=cluster, taskDefinition=family, launchType="FARGATE", networkConfiguration=NETWORK)
    assert out["failures"] == []
    [t] = out["tasks"]
    assert t["launchType"] == "FARGATE" and "containerInstanceArn" not in t and "capacityProviderName" not in t
    assert t["platformVersion"] == "1.4.0" and t["platformFamily"] == "Linux"
    assert t["ephemeralStorage"] == {"sizeInGiB": 30} and t["cpu"] == "1024" and t["memory"] == "2048"
    [eni] = t["attachments"]
    assert eni["type"] == "ElasticNetworkInterface" and eni["status"] == "PRECREATED"
    assert {"name": "subnetId", "value": "subnet-1"} in eni["details"]
    assert ecs.list_container_instances(cluster=cluster)["containerInstanceArns"] == []
    assert POOL not in str(ecs.list_clusters()["clusterArns"])
    assert ecs.describe_clusters(clusters=[POOL])["failures"][0]["reason"] == "MISSING"
    expect_error(lambda: ecs.list_container_instances(cluster=POOL), "ClusterNotFoundException")
    expect_error(lambda: ecs.run_task(cluster=POOL, taskDefinition=family, launchType="FARGATE",
                                      networkConfiguration=NETWORK), "ClusterNotFoundException")
    expect_error(lambda: ecs.delete_cluster(cluster=POOL), "ClusterNotFoundException")
    [c] = ecs.describe_clusters(clusters=[cluster], include=["STATISTICS"])["clusters"]
    stats = {s["name"]: s["value"] for s in c["statistics"]}
    assert c["registeredContainerInstancesCount"] == 0 and c["pendingTasksCount"] == 1
    assert stats["pendingFargateTasksCount"] == "1" and stats["pendingEC2TasksCount"] == "0"
    assert ecs.list_tasks(cluster=cluster, launchType="FARGATE")["taskArns"] == [t["taskArn"]]
    assert ecs.list_tasks(cluster=cluster, launchType="EC2")["taskArns"] == []
    ecs.stop_task(cluster=cluster, task=t["taskArn"])


def test_strategies_follow_base_and_weight_and_the_cluster_default(ecs, cluster, capacity):
    family = fargate_family(ecs)
    out = ecs.run_task(cluster=cluster, taskDefinition=family, count=5, networkConfiguration=NETWORK,
                       capacityProviderStrategy=[{"capacityProvider": "FARGATE", "base": 1, "weight": 1},
                                                 {"capacityProvider": "FARGATE_SPOT", "weight": 3}])
    assert out["failures"] == []
    names = [t["capacityProviderName"] for t in out["tasks"]]
    assert names.count("FARGATE") == 2 and names.count("FARGATE_SPOT") == 3
    ecs.put_cluster_capacity_providers(cluster=cluster, capacityProviders=["FARGATE", "FARGATE_SPOT"],
                                       defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT",
                                                                         "weight": 1}])
    [t] = ecs.run_task(cluster=cluster, taskDefinition=family, networkConfiguration=NETWORK)["tasks"]
    assert t["capacityProviderName"] == "FARGATE_SPOT" and t["launchType"] == "FARGATE"
    for task in out["tasks"] + [t]:
        ecs.stop_task(cluster=cluster, task=task["taskArn"])


def test_short_capacity_fails_the_copies_that_do_not_fit(ecs, cluster, capacity):
    family = fargate_family(ecs, cpu="4096", memory="30720")
    out = ecs.run_task(cluster=cluster, taskDefinition=family, launchType="FARGATE", networkConfiguration=NETWORK)
    assert out["tasks"] == []
    assert [f["reason"] for f in out["failures"]] == [
        "Capacity is unavailable at this time. Please try again later or in a different availability zone"]


def test_fargate_service_records_its_platform(ecs, cluster, capacity):
    family = fargate_family(ecs)
    expect_error(lambda: ecs.create_service(cluster=cluster, serviceName=uid("s"), taskDefinition=family,
                                            desiredCount=1, launchType="FARGATE"),
                 "InvalidParameterException", "Network Configuration must be provided")
    svc = ecs.create_service(cluster=cluster, serviceName=uid("s"), taskDefinition=family, desiredCount=0,
                             networkConfiguration=NETWORK,
                             capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}])["service"]
    assert svc["capacityProviderStrategy"][0]["capacityProvider"] == "FARGATE_SPOT"
    assert svc["platformVersion"] == "1.4.0" and svc["platformFamily"] == "Linux"
    assert svc["deployments"][0]["platformVersion"] == "1.4.0"
    ecs.delete_service(cluster=cluster, service=svc["serviceName"], force=True)


def test_capacity_providers_crud(ecs):
    both = ecs.describe_capacity_providers(capacityProviders=["FARGATE", "FARGATE_SPOT"])["capacityProviders"]
    assert [p["name"] for p in both] == ["FARGATE", "FARGATE_SPOT"] and all(p["status"] == "ACTIVE" for p in both)
    assert both[0]["capacityProviderArn"].endswith(":capacity-provider/FARGATE")
    name = uid("cp")
    asg = {"autoScalingGroupArn": "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:1:autoScalingGroupName/a",
           "managedTerminationProtection": "DISABLED"}
    made = ecs.create_capacity_provider(name=name, autoScalingGroupProvider=asg, tags=[{"key": "k", "value": "v"}])
    assert made["capacityProvider"]["status"] == "ACTIVE"
    expect_error(lambda: ecs.create_capacity_provider(name=name, autoScalingGroupProvider=asg),
                 "InvalidParameterException", "already exists")
    expect_error(lambda: ecs.create_capacity_provider(name="fargate-mine", autoScalingGroupProvider=asg),
                 "InvalidParameterException", "cannot be prefixed")
    upd = ecs.update_capacity_provider(name=name, autoScalingGroupProvider={"managedDraining": "ENABLED"})
    assert upd["capacityProvider"]["autoScalingGroupProvider"]["managedDraining"] == "ENABLED"
    listed = ecs.describe_capacity_providers(include=["TAGS"])["capacityProviders"]
    mine = next(p for p in listed if p["name"] == name)
    assert mine["tags"] == [{"key": "k", "value": "v"}] and {"FARGATE", "FARGATE_SPOT"} <= {p["name"] for p in listed}
    out = ecs.describe_capacity_providers(capacityProviders=["missing-cp"])
    assert out["failures"][0]["reason"] == "MISSING"
    expect_error(lambda: ecs.delete_capacity_provider(capacityProvider="FARGATE"), "InvalidParameterException",
                 "reserved")
    assert ecs.delete_capacity_provider(capacityProvider=name)["capacityProvider"]["status"] == "INACTIVE"
    expect_error(lambda: ecs.delete_capacity_provider(capacityProvider=name), "InvalidParameterException",
                 "does not exist")


def test_start_task_runs_on_the_named_instance_whatever_the_default_strategy(ecs, cluster):
    arn = register(ecs, cluster)["containerInstanceArn"]
    ecs.put_cluster_capacity_providers(cluster=cluster, capacityProviders=["FARGATE"],
                                       defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}])
    family = uid("ec2")
    ecs.register_task_definition(family=family, containerDefinitions=[container("app")])
    [t] = ecs.start_task(cluster=cluster, taskDefinition=family, containerInstances=[arn])["tasks"]
    assert t["launchType"] == "EC2" and t["containerInstanceArn"] == arn
    # RunTask follows the default strategy, so this EC2-only definition cannot run there.
    expect_error(lambda: ecs.run_task(cluster=cluster, taskDefinition=family), "InvalidParameterException",
                 "does not support launch_type FARGATE")
    ecs.stop_task(cluster=cluster, task=t["taskArn"])
