"""Pagination: boto3 paginators over ListClusters / ListTaskDefinitions /
ListTaskDefinitionFamilies, maxResults bounds (ECS: 1-100) and bad nextTokens."""

from __future__ import annotations

import pytest

from berthlib import container, expect_error, uid

N = 250


def _paginate(ecs, op, key, page_size, **kw):
    pages, items = 0, []
    for page in ecs.get_paginator(op).paginate(PaginationConfig={"PageSize": page_size}, **kw):
        assert len(page[key]) <= page_size, f"page of {len(page[key])} > PageSize {page_size}"
        items.extend(page[key])
        pages += 1
    return items, pages


@pytest.fixture(scope="module")
def many_clusters(berth):
    from berthlib import profile_client

    ecs = profile_client()
    prefix = uid("pg")
    names = [f"{prefix}-{i:03d}" for i in range(N)]
    for n in names:
        ecs.create_cluster(clusterName=n)
    return [berth.cluster_arn(n) for n in names]


@pytest.fixture(scope="module")
def many_revisions(berth):
    from berthlib import profile_client

    ecs = profile_client()
    fam = uid("pgfam")
    for _ in range(N):
        ecs.register_task_definition(family=fam, containerDefinitions=[container("app")])
    return fam


def test_list_clusters_paginator(ecs, many_clusters):
    small, pages = _paginate(ecs, "list_clusters", "clusterArns", 7)
    assert len(small) == len(set(small)), "a cluster was returned twice"
    missing = set(many_clusters) - set(small)
    assert not missing, f"{len(missing)} clusters never returned"
    assert pages >= N // 7
    big, _ = _paginate(ecs, "list_clusters", "clusterArns", 100)
    assert small == big, "page size changed the listing order or content"


def test_list_clusters_default_page_is_at_most_100(ecs, many_clusters):
    resp = ecs.list_clusters()
    assert 0 < len(resp["clusterArns"]) <= 100
    assert resp.get("nextToken"), "more than 100 clusters exist but no nextToken was returned"


def test_list_task_definitions_paginator(ecs, berth, many_revisions):
    fam = many_revisions
    asc, _ = _paginate(ecs, "list_task_definitions", "taskDefinitionArns", 7, familyPrefix=fam)
    assert asc == [berth.td_arn(fam, r) for r in range(1, N + 1)]
    desc, _ = _paginate(ecs, "list_task_definitions", "taskDefinitionArns", 7, familyPrefix=fam, sort="DESC")
    assert desc == list(reversed(asc))


def test_list_task_definitions_manual_tokens(ecs, berth, many_revisions):
    fam = many_revisions
    got, token = [], None
    while True:
        kw = {"familyPrefix": fam, "maxResults": 100}
        if token:
            kw["nextToken"] = token
        resp = ecs.list_task_definitions(**kw)
        got.extend(resp["taskDefinitionArns"])
        token = resp.get("nextToken")
        if not token:
            break
    assert got == [berth.td_arn(fam, r) for r in range(1, N + 1)]


def test_list_task_definition_families_paginator(ecs):
    base = uid("pgf")
    fams = [f"{base}-{i:02d}" for i in range(30)]
    for f in fams:
        ecs.register_task_definition(family=f, containerDefinitions=[container("app")])
    got, _ = _paginate(ecs, "list_task_definition_families", "families", 7, familyPrefix=base)
    assert got == fams


@pytest.mark.parametrize("op", ["list_clusters", "list_task_definitions", "list_task_definition_families"])
@pytest.mark.parametrize("bad", [0, 101, -1])
def test_max_results_out_of_range(ecs_raw, op, bad):
    expect_error(lambda: getattr(ecs_raw, op)(maxResults=bad), "InvalidParameterException")


@pytest.mark.parametrize("op", ["list_clusters", "list_task_definitions", "list_task_definition_families"])
def test_max_results_bounds_accepted(ecs, op):
    getattr(ecs, op)(maxResults=1)
    getattr(ecs, op)(maxResults=100)


@pytest.mark.parametrize("op", ["list_clusters", "list_task_definitions", "list_task_definition_families"])
@pytest.mark.parametrize("token", ["garbage", "AAAAAAAAAAAAAAAAAAAAAAAAAAAA", "eyJvZmZzZXQiOiA1fQ=="])
def test_garbage_next_token(ecs, op, token):
    expect_error(lambda: getattr(ecs, op)(nextToken=token), "InvalidParameterException")
