"""Container instances through boto3: the calls an agent makes (RegisterContainerInstance)
and the ones users make (Describe, List with filters, Deregister, UpdateContainerInstancesState,
attributes, tags)."""

from __future__ import annotations

import pytest

from berthlib import expect_error, uid


def resources(cpu=2048, memory=4096, ports=("22",)):
    return [
        {"name": "CPU", "type": "INTEGER", "integerValue": cpu},
        {"name": "MEMORY", "type": "INTEGER", "integerValue": memory},
        {"name": "PORTS", "type": "STRINGSET", "stringSetValue": list(ports)},
        {"name": "PORTS_UDP", "type": "STRINGSET", "stringSetValue": []},
    ]


@pytest.fixture
def cluster(ecs):
    name = uid("ci")
    ecs.create_cluster(clusterName=name)
    return name


def register(ecs, cluster, zone="us-east-1a", **kw):
    attrs = [{"name": "ecs.os-type", "value": "linux"}, {"name": "ecs.availability-zone", "value": zone},
             {"name": "ecs.cpu-architecture", "value": "x86_64"}] + kw.pop("extra", [])
    return ecs.register_container_instance(cluster=cluster, totalResources=resources(**kw), attributes=attrs,
                                           versionInfo={"agentVersion": "1.0.0"})["containerInstance"]


def test_register_describe_shape(ecs, cluster, berth):
    ci = register(ecs, cluster)
    arn = ci["containerInstanceArn"]
    assert arn.startswith(f"arn:aws:ecs:us-east-1:{berth.account}:container-instance/{cluster}/")
    assert ci["status"] == "ACTIVE" and ci["agentConnected"] is True
    assert ci["runningTasksCount"] == 0 and ci["pendingTasksCount"] == 0
    cpu = {r["name"]: r for r in ci["registeredResources"]}["CPU"]
    assert cpu["integerValue"] == 2048
    described = ecs.describe_container_instances(cluster=cluster, containerInstances=[arn.rsplit("/", 1)[1]])
    assert [c["containerInstanceArn"] for c in described["containerInstances"]] == [arn]
    assert described["failures"] == []


def test_reregistering_keeps_identity(ecs, cluster):
    first = register(ecs, cluster)
    again = ecs.register_container_instance(cluster=cluster, totalResources=resources(memory=8192),
                                            containerInstanceArn=first["containerInstanceArn"])["containerInstance"]
    assert again["containerInstanceArn"] == first["containerInstanceArn"]
    assert {r["name"]: r for r in again["registeredResources"]}["MEMORY"]["integerValue"] == 8192
    assert len(ecs.list_container_instances(cluster=cluster)["containerInstanceArns"]) == 1


def test_describe_missing_is_a_failure(ecs, cluster):
    out = ecs.describe_container_instances(cluster=cluster, containerInstances=["0123456789abcdef"])
    assert out["containerInstances"] == []
    assert out["failures"][0]["reason"] == "MISSING"
    assert out["failures"][0]["arn"].endswith(f"container-instance/{cluster}/0123456789abcdef")


def test_unknown_cluster(ecs):
    expect_error(lambda: ecs.list_container_instances(cluster=uid("nope")), ("ClusterNotFoundException",))
    expect_error(lambda: ecs.register_container_instance(cluster=uid("nope"), totalResources=resources()),
                 ("ClusterNotFoundException",))


def test_register_needs_cpu_and_memory(ecs, cluster):
    expect_error(lambda: ecs.register_container_instance(cluster=cluster, totalResources=[]),
                 ("InvalidParameterException",), "CPU")


def test_list_filter_and_status(ecs, cluster):
    a = register(ecs, cluster, zone="us-east-1a", extra=[{"name": "stack", "value": "prod"}])["containerInstanceArn"]
    b = register(ecs, cluster, zone="us-east-1b")["containerInstanceArn"]
    by = lambda f: sorted(ecs.list_container_instances(cluster=cluster, filter=f)["containerInstanceArns"])
    assert by("attribute:ecs.availability-zone == us-east-1a") == [a]
    assert by("attribute:ecs.availability-zone in [us-east-1a, us-east-1b]") == sorted([a, b])
    assert by("attribute:stack exists") == [a]
    assert by("not(attribute:stack exists)") == [b]
    expect_error(lambda: ecs.list_container_instances(cluster=cluster, filter="attribute:stack =="),
                 ("InvalidParameterException",))
    ecs.update_container_instances_state(cluster=cluster, containerInstances=[b], status="DRAINING")
    assert ecs.list_container_instances(cluster=cluster, status="DRAINING")["containerInstanceArns"] == [b]
    assert ecs.list_container_instances(cluster=cluster, status="ACTIVE")["containerInstanceArns"] == [a]
    assert sorted(ecs.list_container_instances(cluster=cluster)["containerInstanceArns"]) == sorted([a, b])


def test_update_state_only_active_or_draining(ecs, cluster):
    a = register(ecs, cluster)["containerInstanceArn"]
    out = ecs.update_container_instances_state(cluster=cluster, containerInstances=[a, "feedfacefeedface"],
                                               status="DRAINING")
    assert [c["status"] for c in out["containerInstances"]] == ["DRAINING"]
    assert out["failures"][0]["reason"] == "MISSING"
    expect_error(lambda: ecs.update_container_instances_state(cluster=cluster, containerInstances=[a],
                                                              status="REGISTERING"), ("InvalidParameterException",))


def test_deregister_makes_inactive(ecs, cluster):
    a = register(ecs, cluster)["containerInstanceArn"]
    out = ecs.deregister_container_instance(cluster=cluster, containerInstance=a)["containerInstance"]
    assert out["status"] == "INACTIVE"
    assert ecs.list_container_instances(cluster=cluster)["containerInstanceArns"] == []
    assert ecs.describe_container_instances(cluster=cluster, containerInstances=[a])["containerInstances"][0][
        "status"] == "INACTIVE"
    expect_error(lambda: ecs.deregister_container_instance(cluster=cluster, containerInstance=a),
                 ("InvalidParameterException",))


def test_attributes_put_list_delete(ecs, cluster):
    a = register(ecs, cluster)["containerInstanceArn"]
    ecs.put_attributes(cluster=cluster, attributes=[{"name": "team", "value": "web", "targetId": a}])
    listed = ecs.list_attributes(cluster=cluster, targetType="container-instance", attributeName="team")["attributes"]
    assert listed == [{"name": "team", "value": "web", "targetType": "container-instance", "targetId": a}]
    ecs.delete_attributes(cluster=cluster, attributes=[{"name": "team", "targetId": a}])
    assert ecs.list_attributes(cluster=cluster, targetType="container-instance", attributeName="team")["attributes"] == []
    expect_error(lambda: ecs.put_attributes(cluster=cluster, attributes=[{"name": "ecs.os-type", "value": "x",
                                                                         "targetId": a}]),
                 ("InvalidParameterException",))
    expect_error(lambda: ecs.put_attributes(cluster=cluster, attributes=[{"name": "x", "value": "y",
                                                                         "targetId": "feedfacefeedface"}]),
                 ("TargetNotFoundException",))
    too_many = [{"name": f"a{i}", "value": "v", "targetId": a} for i in range(11)]
    expect_error(lambda: ecs.put_attributes(cluster=cluster, attributes=too_many), ("InvalidParameterException",))


def test_custom_attribute_limit(ecs, cluster):
    a = register(ecs, cluster)["containerInstanceArn"]
    ecs.put_attributes(cluster=cluster, attributes=[{"name": f"a{i}", "value": "v", "targetId": a} for i in range(10)])
    expect_error(lambda: ecs.put_attributes(cluster=cluster, attributes=[{"name": "one-more", "targetId": a}]),
                 ("AttributeLimitExceededException",))


def test_tags_on_container_instances(ecs, cluster):
    a = register(ecs, cluster)["containerInstanceArn"]
    ecs.tag_resource(resourceArn=a, tags=[{"key": "rack", "value": "r1"}])
    assert ecs.list_tags_for_resource(resourceArn=a)["tags"] == [{"key": "rack", "value": "r1"}]
    described = ecs.describe_container_instances(cluster=cluster, containerInstances=[a], include=["TAGS"])
    assert described["containerInstances"][0]["tags"] == [{"key": "rack", "value": "r1"}]


def test_cluster_counts_and_delete_guard(ecs, cluster):
    a = register(ecs, cluster)["containerInstanceArn"]
    register(ecs, cluster)
    c = ecs.describe_clusters(clusters=[cluster])["clusters"][0]
    assert c["registeredContainerInstancesCount"] == 2
    expect_error(lambda: ecs.delete_cluster(cluster=cluster), ("ClusterContainsContainerInstancesException",))
    ecs.deregister_container_instance(cluster=cluster, containerInstance=a)
    assert ecs.describe_clusters(clusters=[cluster])["clusters"][0]["registeredContainerInstancesCount"] == 1
