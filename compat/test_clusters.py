"""Clusters: CreateCluster, DescribeClusters, ListClusters, DeleteCluster, UpdateCluster,
UpdateClusterSettings, PutClusterCapacityProviders, and the implicit `default` cluster."""

from __future__ import annotations

from berthlib import assert_subset, expect_error, uid

COUNTS = ("registeredContainerInstancesCount", "runningTasksCount", "pendingTasksCount", "activeServicesCount")


def _only(resp_clusters):
    assert len(resp_clusters) == 1, resp_clusters
    return resp_clusters[0]


def test_create_cluster_shape_and_defaults(ecs, berth):
    name = uid("c")
    resp = ecs.create_cluster(clusterName=name)
    c = resp["cluster"]
    assert c["clusterArn"] == berth.cluster_arn(name)
    assert c["clusterName"] == name
    assert c["status"] == "ACTIVE"
    for k in COUNTS:
        assert c[k] == 0, (k, c)
    assert not c.get("tags"), c
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_create_cluster_with_settings_and_tags(ecs, berth):
    name = uid("c")
    tags = [{"key": "team", "value": "platform"}, {"key": "env", "value": "staging"}, {"key": "empty", "value": ""}]
    c = ecs.create_cluster(
        clusterName=name,
        settings=[{"name": "containerInsights", "value": "enabled"}],
        tags=tags,
    )["cluster"]
    assert {"name": "containerInsights", "value": "enabled"} in c["settings"], c
    assert sorted(c["tags"], key=lambda t: t["key"]) == sorted(tags, key=lambda t: t["key"])

    d = _only(ecs.describe_clusters(clusters=[name], include=["SETTINGS", "TAGS"])["clusters"])
    assert {"name": "containerInsights", "value": "enabled"} in d["settings"]
    assert sorted(d["tags"], key=lambda t: t["key"]) == sorted(tags, key=lambda t: t["key"])


def test_create_cluster_is_idempotent(ecs, berth):
    name = uid("c")
    first = ecs.create_cluster(clusterName=name)["cluster"]
    second = ecs.create_cluster(clusterName=name)["cluster"]
    assert first["clusterArn"] == second["clusterArn"]
    assert second["status"] == "ACTIVE"
    arns = _all_cluster_arns(ecs)
    assert arns.count(berth.cluster_arn(name)) == 1


def test_create_cluster_invalid_name(ecs):
    expect_error(lambda: ecs.create_cluster(clusterName="bad name!"), ("InvalidParameterException", "ClientException"))
    expect_error(lambda: ecs.create_cluster(clusterName="x" * 256), ("InvalidParameterException", "ClientException"))


def test_create_cluster_name_at_max_length(ecs, berth):
    name = ("n" + uid("")).replace("-", "_")[:12] + "x" * 243
    assert len(name) == 255
    c = ecs.create_cluster(clusterName=name)["cluster"]
    assert c["clusterName"] == name and c["clusterArn"] == berth.cluster_arn(name)


def test_describe_by_name_and_by_arn(ecs, berth):
    name = uid("c")
    arn = ecs.create_cluster(clusterName=name)["cluster"]["clusterArn"]
    by_name = ecs.describe_clusters(clusters=[name])
    by_arn = ecs.describe_clusters(clusters=[arn])
    assert by_name["failures"] == [] and by_arn["failures"] == []
    a, b = _only(by_name["clusters"]), _only(by_arn["clusters"])
    assert a["clusterArn"] == b["clusterArn"] == arn
    assert a["clusterName"] == b["clusterName"] == name
    assert a["status"] == "ACTIVE"
    for k in COUNTS:
        assert a[k] == 0


def test_describe_missing_cluster_reports_failure(ecs, berth):
    missing = uid("nosuch")
    resp = ecs.describe_clusters(clusters=[missing])
    assert resp["clusters"] == []
    assert resp["failures"] == [{"arn": berth.cluster_arn(missing), "reason": "MISSING"}]


def test_describe_mixed_found_and_missing(ecs, berth):
    name, missing = uid("c"), uid("nosuch")
    ecs.create_cluster(clusterName=name)
    resp = ecs.describe_clusters(clusters=[name, missing])
    assert [c["clusterName"] for c in resp["clusters"]] == [name]
    assert [(f["arn"], f["reason"]) for f in resp["failures"]] == [(berth.cluster_arn(missing), "MISSING")]


def test_describe_include_statistics(ecs):
    name = uid("c")
    ecs.create_cluster(clusterName=name)
    c = _only(ecs.describe_clusters(clusters=[name], include=["STATISTICS"])["clusters"])
    assert isinstance(c.get("statistics"), list), c
    for s in c["statistics"]:
        assert set(s) >= {"name", "value"} and isinstance(s["value"], str), s


def test_tags_only_with_include_tags(ecs):
    name = uid("c")
    ecs.create_cluster(clusterName=name, tags=[{"key": "k", "value": "v"}])
    plain = _only(ecs.describe_clusters(clusters=[name])["clusters"])
    assert not plain.get("tags"), f"tags returned without include=TAGS: {plain}"
    tagged = _only(ecs.describe_clusters(clusters=[name], include=["TAGS"])["clusters"])
    assert tagged["tags"] == [{"key": "k", "value": "v"}]


def test_describe_include_settings_default(ecs):
    name = uid("c")
    ecs.create_cluster(clusterName=name)
    c = _only(ecs.describe_clusters(clusters=[name], include=["SETTINGS"])["clusters"])
    assert isinstance(c.get("settings", []), list)
    for s in c.get("settings", []):
        if s["name"] == "containerInsights":
            assert s["value"] in ("enabled", "disabled", "enhanced")


def test_list_clusters_returns_arns(ecs, berth):
    names = [uid("lc") for _ in range(3)]
    for n in names:
        ecs.create_cluster(clusterName=n)
    arns = _all_cluster_arns(ecs)
    for n in names:
        assert berth.cluster_arn(n) in arns
    assert all(a.startswith(f"arn:aws:ecs:us-east-1:{berth.account}:cluster/") for a in arns)


def test_delete_cluster(ecs, berth):
    name = uid("c")
    ecs.create_cluster(clusterName=name)
    deleted = ecs.delete_cluster(cluster=name)["cluster"]
    assert deleted["clusterArn"] == berth.cluster_arn(name)
    assert deleted["clusterName"] == name
    assert deleted["status"] == "INACTIVE"
    # ECS keeps INACTIVE clusters describable for a while.
    resp = ecs.describe_clusters(clusters=[name])
    assert resp["failures"] == []
    assert _only(resp["clusters"])["status"] == "INACTIVE"


def test_delete_cluster_by_arn(ecs, berth):
    name = uid("c")
    arn = ecs.create_cluster(clusterName=name)["cluster"]["clusterArn"]
    assert ecs.delete_cluster(cluster=arn)["cluster"]["status"] == "INACTIVE"


def test_recreate_after_delete_is_active_again(ecs, berth):
    name = uid("c")
    ecs.create_cluster(clusterName=name)
    ecs.delete_cluster(cluster=name)
    again = ecs.create_cluster(clusterName=name)["cluster"]
    assert again["status"] == "ACTIVE"
    assert again["clusterArn"] == berth.cluster_arn(name)
    assert _only(ecs.describe_clusters(clusters=[name])["clusters"])["status"] == "ACTIVE"


def test_delete_missing_cluster(ecs):
    expect_error(lambda: ecs.delete_cluster(cluster=uid("nosuch")), "ClusterNotFoundException", "Cluster not found.", ci=False)


def test_operations_on_missing_cluster(ecs_raw):
    missing = uid("nosuch")
    for call in (
        lambda: ecs_raw.update_cluster_settings(cluster=missing, settings=[{"name": "containerInsights", "value": "enabled"}]),
        lambda: ecs_raw.update_cluster(cluster=missing, settings=[{"name": "containerInsights", "value": "enabled"}]),
        lambda: ecs_raw.put_cluster_capacity_providers(cluster=missing, capacityProviders=["FARGATE"],
                                                       defaultCapacityProviderStrategy=[]),
    ):
        expect_error(call, "ClusterNotFoundException", "Cluster not found.", ci=False)


def test_update_cluster_settings(ecs):
    name = uid("c")
    ecs.create_cluster(clusterName=name)
    c = ecs.update_cluster_settings(cluster=name, settings=[{"name": "containerInsights", "value": "enabled"}])["cluster"]
    assert c["clusterName"] == name
    assert {"name": "containerInsights", "value": "enabled"} in c["settings"]
    d = _only(ecs.describe_clusters(clusters=[name], include=["SETTINGS"])["clusters"])
    assert {"name": "containerInsights", "value": "enabled"} in d["settings"]
    c = ecs.update_cluster_settings(cluster=name, settings=[{"name": "containerInsights", "value": "disabled"}])["cluster"]
    assert {"name": "containerInsights", "value": "disabled"} in c["settings"]


def test_update_cluster_settings_invalid_value(ecs_raw):
    name = uid("c")
    ecs_raw.create_cluster(clusterName=name)
    expect_error(lambda: ecs_raw.update_cluster_settings(cluster=name, settings=[{"name": "containerInsights", "value": "sometimes"}]),
                 ("InvalidParameterException", "ClientException"))
    expect_error(lambda: ecs_raw.update_cluster_settings(cluster=name, settings=[{"name": "notASetting", "value": "enabled"}]),
                 ("InvalidParameterException", "ClientException"))


def test_update_cluster(ecs):
    name = uid("c")
    ecs.create_cluster(clusterName=name)
    c = ecs.update_cluster(
        cluster=name,
        settings=[{"name": "containerInsights", "value": "enabled"}],
        configuration={"executeCommandConfiguration": {"logging": "DEFAULT"}},
    )["cluster"]
    assert c["clusterName"] == name and c["status"] == "ACTIVE"
    assert {"name": "containerInsights", "value": "enabled"} in c["settings"]
    assert c["configuration"]["executeCommandConfiguration"]["logging"] == "DEFAULT"
    d = _only(ecs.describe_clusters(clusters=[name], include=["SETTINGS", "CONFIGURATIONS"])["clusters"])
    assert {"name": "containerInsights", "value": "enabled"} in d["settings"]


def test_put_cluster_capacity_providers(ecs):
    name = uid("c")
    ecs.create_cluster(clusterName=name)
    strategy = [{"capacityProvider": "FARGATE", "weight": 1, "base": 1}, {"capacityProvider": "FARGATE_SPOT", "weight": 3}]
    c = ecs.put_cluster_capacity_providers(
        cluster=name, capacityProviders=["FARGATE", "FARGATE_SPOT"], defaultCapacityProviderStrategy=strategy
    )["cluster"]
    assert sorted(c["capacityProviders"]) == ["FARGATE", "FARGATE_SPOT"]
    assert_subset(strategy, c["defaultCapacityProviderStrategy"])
    d = _only(ecs.describe_clusters(clusters=[name])["clusters"])
    assert sorted(d["capacityProviders"]) == ["FARGATE", "FARGATE_SPOT"]
    assert_subset(strategy, d["defaultCapacityProviderStrategy"])
    # clearing them again
    c = ecs.put_cluster_capacity_providers(cluster=name, capacityProviders=[], defaultCapacityProviderStrategy=[])["cluster"]
    assert c.get("capacityProviders", []) == []
    assert c.get("defaultCapacityProviderStrategy", []) == []


def test_create_cluster_with_capacity_providers(ecs):
    name = uid("c")
    c = ecs.create_cluster(
        clusterName=name,
        capacityProviders=["FARGATE"],
        defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}],
    )["cluster"]
    assert c["capacityProviders"] == ["FARGATE"]
    assert_subset([{"capacityProvider": "FARGATE", "weight": 1}], c["defaultCapacityProviderStrategy"])


def test_put_unknown_capacity_provider(ecs):
    name = uid("c")
    ecs.create_cluster(clusterName=name)
    expect_error(lambda: ecs.put_cluster_capacity_providers(
        cluster=name, capacityProviders=["NO_SUCH_PROVIDER"], defaultCapacityProviderStrategy=[]),
        "InvalidParameterException")


def test_strategy_must_name_associated_provider(ecs):
    name = uid("c")
    ecs.create_cluster(clusterName=name)
    expect_error(lambda: ecs.put_cluster_capacity_providers(
        cluster=name, capacityProviders=["FARGATE"],
        defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}]),
        "InvalidParameterException")


def test_default_cluster(ecs, berth):
    c = ecs.create_cluster()["cluster"]
    assert c["clusterName"] == "default"
    assert c["clusterArn"] == berth.cluster_arn("default")
    assert c["status"] == "ACTIVE"
    # DescribeClusters naming no cluster describes `default`
    d = ecs.describe_clusters()
    assert [x["clusterArn"] for x in d["clusters"]] == [berth.cluster_arn("default")]
    assert d["failures"] == []
    # UpdateClusterSettings etc. take `default` by name
    ecs.update_cluster_settings(cluster="default", settings=[{"name": "containerInsights", "value": "disabled"}])
    assert berth.cluster_arn("default") in _all_cluster_arns(ecs)


def test_describe_clusters_too_many(ecs_raw):
    """DescribeClusters takes "a list of up to 100 cluster names"; ECS refuses more the way
    DescribeServices refuses 11 ("service names can have at most 10 items")."""
    names = [f"nope-{i}" for i in range(101)]
    expect_error(lambda: ecs_raw.describe_clusters(clusters=names), ("InvalidParameterException", "ClientException"))


def _all_cluster_arns(ecs):
    out = []
    for page in ecs.get_paginator("list_clusters").paginate(PaginationConfig={"PageSize": 100}):
        out.extend(page["clusterArns"])
    return out


def test_concurrent_create_same_name(berth):
    """Racing CreateCluster calls for one name all succeed with the same cluster."""
    import threading

    from berthlib import profile_client

    name = uid("race")
    arns, errors = [], []

    def worker():
        try:
            arns.append(profile_client().create_cluster(clusterName=name)["cluster"]["clusterArn"])
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert arns == [berth.cluster_arn(name)] * 8
    assert _all_cluster_arns(profile_client()).count(berth.cluster_arn(name)) == 1


def test_fresh_server_has_no_default_cluster(spawn_server):
    """ECS does not create `default` until asked: describing it reports it MISSING."""
    srv = spawn_server("fresh")
    srv.start()
    ecs = srv.client()
    assert ecs.list_clusters()["clusterArns"] == []
    resp = ecs.describe_clusters()
    assert resp["clusters"] == []
    assert resp["failures"] == [{"arn": srv.cluster_arn("default"), "reason": "MISSING"}]
    assert ecs.create_cluster()["cluster"]["clusterArn"] == srv.cluster_arn("default")
    assert ecs.list_clusters()["clusterArns"] == [srv.cluster_arn("default")]
