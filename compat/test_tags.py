"""TagResource / UntagResource / ListTagsForResource on clusters and task definitions,
and ECS's tag limits (50 tags per resource, key 1-128, value 0-256, `aws:` reserved).

botocore checks some limits client-side (list length, key length), so the limit tests
use a client with parameter validation off: the server must enforce them itself.
"""

from __future__ import annotations

import pytest

from berthlib import container, expect_error, uid


def _tags(ecs, arn):
    return sorted(ecs.list_tags_for_resource(resourceArn=arn)["tags"], key=lambda t: t["key"])


@pytest.fixture
def cluster_arn(ecs):
    return ecs.create_cluster(clusterName=uid("tagc"))["cluster"]["clusterArn"]


@pytest.fixture
def td_arn(ecs):
    fam = uid("tagtd")
    return ecs.register_task_definition(family=fam, containerDefinitions=[container("app")])["taskDefinition"]["taskDefinitionArn"]


@pytest.mark.parametrize("kind", ["cluster", "task-definition"])
def test_tag_list_untag(ecs, request, kind):
    arn = request.getfixturevalue("cluster_arn" if kind == "cluster" else "td_arn")
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == []
    resp = ecs.tag_resource(resourceArn=arn, tags=[{"key": "team", "value": "a"}, {"key": "env", "value": "dev"}])
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert _tags(ecs, arn) == [{"key": "env", "value": "dev"}, {"key": "team", "value": "a"}]
    # same key again overwrites its value; new keys are added
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "team", "value": "b"}, {"key": "owner", "value": ""}])
    assert _tags(ecs, arn) == [{"key": "env", "value": "dev"}, {"key": "owner", "value": ""}, {"key": "team", "value": "b"}]
    ecs.untag_resource(resourceArn=arn, tagKeys=["env", "owner", "not-there"])
    assert _tags(ecs, arn) == [{"key": "team", "value": "b"}]


def test_cluster_tags_visible_in_describe(ecs, cluster_arn):
    ecs.tag_resource(resourceArn=cluster_arn, tags=[{"key": "k", "value": "v"}])
    c = ecs.describe_clusters(clusters=[cluster_arn], include=["TAGS"])["clusters"][0]
    assert c["tags"] == [{"key": "k", "value": "v"}]


def test_task_definition_tags_visible_in_describe(ecs, td_arn):
    ecs.tag_resource(resourceArn=td_arn, tags=[{"key": "k", "value": "v"}])
    d = ecs.describe_task_definition(taskDefinition=td_arn, include=["TAGS"])
    assert d["tags"] == [{"key": "k", "value": "v"}]


def test_fifty_tags_allowed(ecs, cluster_arn):
    tags = [{"key": f"k{i:02d}", "value": f"v{i}"} for i in range(50)]
    ecs.tag_resource(resourceArn=cluster_arn, tags=tags)
    assert len(_tags(ecs, cluster_arn)) == 50
    # re-tagging an existing key keeps the count at 50
    ecs.tag_resource(resourceArn=cluster_arn, tags=[{"key": "k00", "value": "changed"}])
    assert len(_tags(ecs, cluster_arn)) == 50


def test_fifty_one_tags_in_one_call(ecs_raw, cluster_arn):
    tags = [{"key": f"k{i:02d}", "value": "v"} for i in range(51)]
    expect_error(lambda: ecs_raw.tag_resource(resourceArn=cluster_arn, tags=tags), "InvalidParameterException")
    assert _tags(ecs_raw, cluster_arn) == []


def test_fifty_one_tags_on_the_resource(ecs_raw, cluster_arn):
    ecs_raw.tag_resource(resourceArn=cluster_arn, tags=[{"key": f"a{i:02d}", "value": "v"} for i in range(45)])
    expect_error(lambda: ecs_raw.tag_resource(resourceArn=cluster_arn,
                                              tags=[{"key": f"b{i}", "value": "v"} for i in range(6)]),
                 "InvalidParameterException")
    assert len(_tags(ecs_raw, cluster_arn)) == 45


def test_create_cluster_with_too_many_tags(ecs_raw):
    expect_error(lambda: ecs_raw.create_cluster(clusterName=uid("c"), tags=[{"key": f"k{i}", "value": "v"} for i in range(51)]),
                 "InvalidParameterException")


def test_register_task_definition_with_too_many_tags(ecs_raw):
    expect_error(lambda: ecs_raw.register_task_definition(family=uid("f"), containerDefinitions=[container("app")],
                                                          tags=[{"key": f"k{i}", "value": "v"} for i in range(51)]),
                 "InvalidParameterException")


def test_key_and_value_lengths(ecs_raw, cluster_arn):
    ecs_raw.tag_resource(resourceArn=cluster_arn, tags=[{"key": "k" * 128, "value": "v" * 256}])
    assert _tags(ecs_raw, cluster_arn) == [{"key": "k" * 128, "value": "v" * 256}]
    expect_error(lambda: ecs_raw.tag_resource(resourceArn=cluster_arn, tags=[{"key": "k" * 129, "value": "v"}]),
                 "InvalidParameterException")
    expect_error(lambda: ecs_raw.tag_resource(resourceArn=cluster_arn, tags=[{"key": "k", "value": "v" * 257}]),
                 "InvalidParameterException")
    expect_error(lambda: ecs_raw.tag_resource(resourceArn=cluster_arn, tags=[{"key": "", "value": "v"}]),
                 "InvalidParameterException")


def test_unicode_and_allowed_punctuation(ecs, cluster_arn):
    tags = [{"key": "ñandú", "value": "東京 café"}, {"key": "a.b:c/d=e+f-g@h_i", "value": "x y"}]
    ecs.tag_resource(resourceArn=cluster_arn, tags=tags)
    assert _tags(ecs, cluster_arn) == sorted(tags, key=lambda t: t["key"])


@pytest.mark.parametrize("key", ["aws:owner", "AWS:owner", "Aws:x"])
def test_aws_prefix_is_reserved(ecs_raw, cluster_arn, key):
    expect_error(lambda: ecs_raw.tag_resource(resourceArn=cluster_arn, tags=[{"key": key, "value": "v"}]),
                 "InvalidParameterException")


def test_aws_prefix_reserved_on_create(ecs_raw):
    expect_error(lambda: ecs_raw.create_cluster(clusterName=uid("c"), tags=[{"key": "aws:x", "value": "v"}]),
                 "InvalidParameterException")


def test_unknown_cluster_arn(ecs, berth):
    arn = berth.cluster_arn(uid("nosuch"))
    for call in (lambda: ecs.list_tags_for_resource(resourceArn=arn),
                 lambda: ecs.tag_resource(resourceArn=arn, tags=[{"key": "k", "value": "v"}]),
                 lambda: ecs.untag_resource(resourceArn=arn, tagKeys=["k"])):
        expect_error(call, ("ClusterNotFoundException", "InvalidParameterException", "ResourceNotFoundException"))


def test_deleted_cluster_is_inactive_for_tagging(ecs, cluster_arn):
    """ECS: InvalidParameterException "The specified cluster is inactive. Specify an active
    cluster and try again." (seen by terraform and cloud-nuke)."""
    ecs.delete_cluster(cluster=cluster_arn)
    expect_error(lambda: ecs.tag_resource(resourceArn=cluster_arn, tags=[{"key": "k", "value": "v"}]),
                 "InvalidParameterException", "inactive")
    expect_error(lambda: ecs.list_tags_for_resource(resourceArn=cluster_arn), "InvalidParameterException", "inactive")


def test_unknown_task_definition_arn(ecs, berth):
    arn = berth.td_arn(uid("nosuch"), 1)
    expect_error(lambda: ecs.list_tags_for_resource(resourceArn=arn),
                 ("ClientException", "InvalidParameterException", "ResourceNotFoundException"))
    expect_error(lambda: ecs.tag_resource(resourceArn=arn, tags=[{"key": "k", "value": "v"}]),
                 ("ClientException", "InvalidParameterException", "ResourceNotFoundException"))


@pytest.mark.parametrize("arn", ["not-an-arn", "arn:aws:ecs:us-east-1:123456789012:frobnicator/x", "cluster/x"])
def test_malformed_arn(ecs, arn):
    expect_error(lambda: ecs.list_tags_for_resource(resourceArn=arn), "InvalidParameterException")
