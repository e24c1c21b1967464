"""Task definitions: RegisterTaskDefinition (with its validation), DescribeTaskDefinition,
ListTaskDefinitions, ListTaskDefinitionFamilies, DeregisterTaskDefinition,
DeleteTaskDefinitions.

Error types and messages are ECS's as observed in the wild (ClientException for an
invalid task definition, with messages such as "Family contains invalid characters.").
Where the exact text could not be confirmed, the tests require the error type and that
the message names the offending field.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from berthlib import assert_subset, container, expect_error, uid

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "webapp-taskdef.json"
TD_INVALID = ("ClientException",)
TD_INVALID_ANY = ("ClientException", "InvalidParameterException")


def webapp(family: str) -> dict:
    d = json.loads(FIXTURE.read_text())
    d["family"] = family
    return d


def reg(ecs, family, containers, **kw):
    return ecs.register_task_definition(family=family, containerDefinitions=containers, **kw)


def attr_names(td):
    return {a["name"] for a in td.get("requiresAttributes", [])}


# --- the realistic definition ------------------------------------------------------

def test_register_realistic_definition_round_trips(ecs, berth):
    family = uid("webapp")
    req = webapp(family)
    before = datetime.datetime.now(datetime.timezone.utc)
    resp = ecs.register_task_definition(**req)
    td = resp["taskDefinition"]

    assert td["taskDefinitionArn"] == berth.td_arn(family, 1)
    assert td["family"] == family and td["revision"] == 1
    assert td["status"] == "ACTIVE"
    for k in ("taskRoleArn", "executionRoleArn", "networkMode", "cpu", "memory", "volumes",
              "placementConstraints", "requiresCompatibilities"):
        assert_subset(req[k], td[k], f"taskDefinition.{k}")
    assert [c["name"] for c in td["containerDefinitions"]] == ["web", "migrate", "log-router"]
    for sent, got in zip(req["containerDefinitions"], td["containerDefinitions"]):
        assert_subset(sent, got, f"containerDefinitions[{sent['name']}]")

    # ECS fills these in
    assert isinstance(td["registeredAt"], datetime.datetime)
    assert before - datetime.timedelta(minutes=1) <= td["registeredAt"] <= datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=1)
    assert td["registeredBy"].startswith(f"arn:aws:iam::{berth.account}:") or td["registeredBy"].startswith(f"arn:aws:sts::{berth.account}:"), td["registeredBy"]
    assert "EC2" in td["compatibilities"] and "FARGATE" not in td["compatibilities"], td["compatibilities"]
    names = attr_names(td)
    for a in ("ecs.capability.container-health-check",
              "com.amazonaws.ecs.capability.logging-driver.awslogs",
              "ecs.capability.container-ordering",
              "com.amazonaws.ecs.capability.task-iam-role"):
        assert a in names, f"requiresAttributes lacks {a}: {sorted(names)}"
    assert sorted(resp["tags"], key=lambda t: t["key"]) == sorted(req["tags"], key=lambda t: t["key"])

    # and the same comes back from DescribeTaskDefinition
    d = ecs.describe_task_definition(taskDefinition=f"{family}:1", include=["TAGS"])
    assert d["taskDefinition"] == td
    assert sorted(d["tags"], key=lambda t: t["key"]) == sorted(req["tags"], key=lambda t: t["key"])


def test_defaults_filled_in(ecs, berth):
    family = uid("defaults")
    td = reg(ecs, family, [{"name": "app", "image": "busybox", "memory": 64,
                            "portMappings": [{"containerPort": 8080}],
                            "healthCheck": {"command": ["CMD", "true"]}}])["taskDefinition"]
    c = td["containerDefinitions"][0]
    assert c["cpu"] == 0
    assert c["essential"] is True
    assert c["environment"] == [] and c["mountPoints"] == [] and c["volumesFrom"] == []
    assert c["portMappings"][0]["containerPort"] == 8080
    assert c["portMappings"][0]["protocol"] == "tcp"
    hc = c["healthCheck"]
    assert (hc["interval"], hc["timeout"], hc["retries"]) == (30, 5, 3), hc
    assert td["volumes"] == [] and td["placementConstraints"] == []
    # ECS omits networkMode when none was given (the default, bridge, is implied)
    assert "networkMode" not in td, td.get("networkMode")
    assert "EC2" in td["compatibilities"]
    assert set(td["compatibilities"]) <= {"EC2", "EXTERNAL"}, td["compatibilities"]


def test_awsvpc_host_port_defaults_to_container_port(ecs):
    td = reg(ecs, uid("vpc"), [container("app", portMappings=[{"containerPort": 8080}])],
             networkMode="awsvpc")["taskDefinition"]
    pm = td["containerDefinitions"][0]["portMappings"][0]
    assert pm["containerPort"] == 8080 and pm["hostPort"] == 8080, pm
    assert "ecs.capability.task-eni" in attr_names(td)


def test_fargate_compatible_definition(ecs):
    td = reg(ecs, uid("fg"), [{"name": "app", "image": "busybox"}], networkMode="awsvpc",
             requiresCompatibilities=["FARGATE"], cpu="256", memory="512")["taskDefinition"]
    assert td["requiresCompatibilities"] == ["FARGATE"]
    assert {"EC2", "FARGATE"} <= set(td["compatibilities"]), td["compatibilities"]
    assert td["cpu"] == "256" and td["memory"] == "512"


def test_fargate_compatibility_inferred_when_it_fits(ecs):
    """An awsvpc definition with a valid Fargate size is also FARGATE-compatible."""
    td = reg(ecs, uid("fgfit"), [container("app")], networkMode="awsvpc", cpu="512", memory="1024")["taskDefinition"]
    assert {"EC2", "FARGATE"} <= set(td["compatibilities"]), td["compatibilities"]


# --- revisions ------------------------------------------------------------------------

def test_revisions_increment_per_family(ecs, berth):
    fa, fb = uid("fa"), uid("fb")
    revs_a = [reg(ecs, fa, [container("app")])["taskDefinition"]["revision"] for _ in range(3)]
    revs_b = [reg(ecs, fb, [container("app")])["taskDefinition"]["revision"] for _ in range(2)]
    assert revs_a == [1, 2, 3] and revs_b == [1, 2]
    assert ecs.describe_task_definition(taskDefinition=fa)["taskDefinition"]["taskDefinitionArn"] == berth.td_arn(fa, 3)


def test_revisions_never_reused_after_deregister_and_delete(ecs):
    fam = uid("reuse")
    for _ in range(3):
        reg(ecs, fam, [container("app")])
    ecs.deregister_task_definition(taskDefinition=f"{fam}:3")
    ecs.delete_task_definitions(taskDefinitions=[f"{fam}:3"])
    # the deleted latest revision is not handed out again
    assert reg(ecs, fam, [container("app")])["taskDefinition"]["revision"] == 4
    for r in (1, 2, 4):
        ecs.deregister_task_definition(taskDefinition=f"{fam}:{r}")
    ecs.delete_task_definitions(taskDefinitions=[f"{fam}:1", f"{fam}:2", f"{fam}:4"])
    # every revision of the family is deleted: the next one is still 5, not 1
    assert reg(ecs, fam, [container("app")])["taskDefinition"]["revision"] == 5


# --- describe -------------------------------------------------------------------------

def test_describe_by_family_revision_and_arn(ecs, berth):
    fam = uid("desc")
    for i in range(3):
        reg(ecs, fam, [container("app", environment=[{"name": "REV", "value": str(i + 1)}])])
    latest = ecs.describe_task_definition(taskDefinition=fam)["taskDefinition"]
    assert latest["revision"] == 3
    by_rev = ecs.describe_task_definition(taskDefinition=f"{fam}:2")["taskDefinition"]
    assert by_rev["revision"] == 2
    assert by_rev["containerDefinitions"][0]["environment"] == [{"name": "REV", "value": "2"}]
    by_arn = ecs.describe_task_definition(taskDefinition=berth.td_arn(fam, 1))["taskDefinition"]
    assert by_arn["revision"] == 1 and by_arn["taskDefinitionArn"] == berth.td_arn(fam, 1)


def test_describe_by_family_skips_inactive_latest(ecs):
    fam = uid("latest")
    for _ in range(3):
        reg(ecs, fam, [container("app")])
    ecs.deregister_task_definition(taskDefinition=f"{fam}:3")
    assert ecs.describe_task_definition(taskDefinition=fam)["taskDefinition"]["revision"] == 2
    # an INACTIVE revision is still describable by family:revision
    td = ecs.describe_task_definition(taskDefinition=f"{fam}:3")["taskDefinition"]
    assert td["status"] == "INACTIVE"


def test_describe_missing(ecs):
    fam = uid("nosuch")
    for ref in (fam, f"{fam}:1"):
        expect_error(lambda: ecs.describe_task_definition(taskDefinition=ref), "ClientException",
                     "Unable to describe task definition.", ci=False)
    existing = uid("exists")
    reg(ecs, existing, [container("app")])
    expect_error(lambda: ecs.describe_task_definition(taskDefinition=f"{existing}:9"), "ClientException",
                 "Unable to describe task definition.", ci=False)


def test_describe_include_tags(ecs):
    fam = uid("tags")
    tags = [{"key": "a", "value": "1"}, {"key": "b", "value": ""}]
    reg(ecs, fam, [container("app")], tags=tags)
    with_tags = ecs.describe_task_definition(taskDefinition=fam, include=["TAGS"])
    assert sorted(with_tags["tags"], key=lambda t: t["key"]) == tags
    without = ecs.describe_task_definition(taskDefinition=fam)
    assert not without.get("tags")


# --- deregister / delete --------------------------------------------------------------

def test_deregister(ecs, berth):
    fam = uid("dereg")
    reg(ecs, fam, [container("app")])
    before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)
    td = ecs.deregister_task_definition(taskDefinition=f"{fam}:1")["taskDefinition"]
    assert td["status"] == "INACTIVE"
    assert td["taskDefinitionArn"] == berth.td_arn(fam, 1)
    assert isinstance(td["deregisteredAt"], datetime.datetime) and td["deregisteredAt"] >= before
    d = ecs.describe_task_definition(taskDefinition=berth.td_arn(fam, 1))["taskDefinition"]
    assert d["status"] == "INACTIVE" and "deregisteredAt" in d


def test_deregister_needs_a_revision(ecs):
    """DeregisterTaskDefinition: "You must specify a revision"."""
    fam = uid("norev")
    reg(ecs, fam, [container("app")])
    expect_error(lambda: ecs.deregister_task_definition(taskDefinition=fam), TD_INVALID_ANY, "revision")
    assert ecs.describe_task_definition(taskDefinition=f"{fam}:1")["taskDefinition"]["status"] == "ACTIVE"


def test_deregister_missing(ecs):
    fam = uid("nosuch")
    expect_error(lambda: ecs.deregister_task_definition(taskDefinition=f"{fam}:1"), TD_INVALID_ANY)


def test_delete_task_definitions(ecs, berth):
    fam = uid("del")
    for _ in range(2):
        reg(ecs, fam, [container("app")])
    ecs.deregister_task_definition(taskDefinition=f"{fam}:1")
    missing = f"{uid('nosuch')}:1"
    resp = ecs.delete_task_definitions(taskDefinitions=[berth.td_arn(fam, 1), f"{fam}:2", missing])
    deleted = resp["taskDefinitions"]
    assert [t["taskDefinitionArn"] for t in deleted] == [berth.td_arn(fam, 1)]
    assert deleted[0]["status"] == "DELETE_IN_PROGRESS"
    failed = {f["arn"]: f for f in resp["failures"]}
    assert len(failed) == 2, resp["failures"]
    # the failure names the reference as given (or its full ARN)
    assert any(a == f"{fam}:2" or a.endswith(f"task-definition/{fam}:2") for a in failed), failed  # still ACTIVE
    assert any(a == missing or a.endswith(f"task-definition/{missing}") for a in failed), failed
    for f in resp["failures"]:
        assert f.get("reason"), f
    # the deleted revision no longer lists as INACTIVE
    inactive = ecs.list_task_definitions(familyPrefix=fam, status="INACTIVE")["taskDefinitionArns"]
    assert berth.td_arn(fam, 1) not in inactive


def test_delete_task_definitions_at_most_ten(ecs_raw):
    refs = [f"x{i}:1" for i in range(11)]
    expect_error(lambda: ecs_raw.delete_task_definitions(taskDefinitions=refs), TD_INVALID_ANY)


def test_delete_task_definitions_empty_list(ecs_raw):
    """ECS refuses an empty list (InvalidParameterException "size of TaskDefinition
    references list must be greater than 0", as reproduced by moto)."""
    expect_error(lambda: ecs_raw.delete_task_definitions(taskDefinitions=[]), "InvalidParameterException")


# --- listing ----------------------------------------------------------------------------

def test_list_task_definitions_filters_and_sort(ecs, berth):
    fam, other = uid("lst"), uid("lst")
    fam_longer = fam + "-extra"
    for f, n in ((fam, 3), (other, 1), (fam_longer, 1)):
        for _ in range(n):
            reg(ecs, f, [container("app")])
    ecs.deregister_task_definition(taskDefinition=f"{fam}:2")

    asc = ecs.list_task_definitions(familyPrefix=fam)["taskDefinitionArns"]
    # familyPrefix is the full family name: `fam-extra` is not included
    assert asc == [berth.td_arn(fam, 1), berth.td_arn(fam, 3)]
    desc = ecs.list_task_definitions(familyPrefix=fam, sort="DESC")["taskDefinitionArns"]
    assert desc == [berth.td_arn(fam, 3), berth.td_arn(fam, 1)]
    inactive = ecs.list_task_definitions(familyPrefix=fam, status="INACTIVE")["taskDefinitionArns"]
    assert inactive == [berth.td_arn(fam, 2)]

    everything = []
    for page in ecs.get_paginator("list_task_definitions").paginate(PaginationConfig={"PageSize": 100}):
        everything.extend(page["taskDefinitionArns"])
    assert berth.td_arn(other, 1) in everything and berth.td_arn(fam_longer, 1) in everything
    assert berth.td_arn(fam, 2) not in everything  # default status is ACTIVE


def test_list_task_definitions_order_is_family_then_numeric_revision(ecs, berth):
    """ECS: "By default (ASC) task definitions are listed lexicographically by family name and
    in ascending numerical order by revision"; DESC reverses both."""
    fam = uid("ord")
    longer = fam + "-b"
    for _ in range(11):
        reg(ecs, fam, [container("app")])
    reg(ecs, longer, [container("app")])
    expected = [berth.td_arn(fam, r) for r in range(1, 12)] + [berth.td_arn(longer, 1)]
    wanted = set(expected)

    def listing(sort):
        out = []
        for page in ecs.get_paginator("list_task_definitions").paginate(sort=sort, PaginationConfig={"PageSize": 100}):
            out.extend(a for a in page["taskDefinitionArns"] if a in wanted)
        return out

    assert listing("ASC") == expected
    assert listing("DESC") == list(reversed(expected))


def test_list_task_definition_families(ecs):
    base = uid("famlist")
    active, inactive = f"{base}-a", f"{base}-b"
    reg(ecs, active, [container("app")])
    reg(ecs, inactive, [container("app")])
    ecs.deregister_task_definition(taskDefinition=f"{inactive}:1")

    def fams(**kw):
        return ecs.list_task_definition_families(familyPrefix=base, **kw)["families"]

    assert fams() == [active, inactive]  # default: ACTIVE and INACTIVE families
    assert fams(status="ALL") == [active, inactive]
    assert fams(status="ACTIVE") == [active]
    assert fams(status="INACTIVE") == [inactive]
    assert fams(status="ACTIVE") == ecs.list_task_definition_families(familyPrefix=f"{base}-a")["families"]


def test_list_with_invalid_status(ecs_raw):
    expect_error(lambda: ecs_raw.list_task_definitions(status="SLEEPING"), TD_INVALID_ANY)


# --- task-level cpu / memory ---------------------------------------------------------------

@pytest.mark.parametrize("cpu,memory,want_cpu,want_mem", [
    ("1 vCPU", "2 GB", "1024", "2048"),
    ("0.5 vcpu", "1GB", "512", "1024"),
    ("2048", "4096", "2048", "4096"),
    ("512", "1024", "512", "1024"),
])
def test_task_cpu_memory_strings_are_normalised(ecs, cpu, memory, want_cpu, want_mem):
    td = reg(ecs, uid("size"), [container("app")], cpu=cpu, memory=memory)["taskDefinition"]
    assert (td["cpu"], td["memory"]) == (want_cpu, want_mem)


@pytest.mark.parametrize("value", ["lots", "1 GHz", "-5", ""])
def test_bad_task_cpu_string(ecs, value):
    """ECS: InvalidParameterException "Invalid 'cpu' setting for task." (seen for cpu="")."""
    expect_error(lambda: reg(ecs, uid("badcpu"), [container("app")], cpu=value, memory="512"),
                 "InvalidParameterException", "Invalid 'cpu' setting for task.", ci=False)


@pytest.mark.parametrize("value", ["2 TB", "plenty", "-1", ""])
def test_bad_task_memory_string(ecs, value):
    expect_error(lambda: reg(ecs, uid("badmem"), [container("app")], cpu="256", memory=value),
                 "InvalidParameterException", "memory")


def test_task_memory_alone_satisfies_container_memory(ecs):
    td = reg(ecs, uid("taskmem"), [{"name": "app", "image": "busybox"}], memory="512")["taskDefinition"]
    assert td["memory"] == "512"
    assert "memory" not in td["containerDefinitions"][0]


# --- Fargate validation ----------------------------------------------------------------------

def test_fargate_invalid_cpu_memory_combination(ecs):
    e = expect_error(lambda: reg(ecs, uid("fgbad"), [{"name": "app", "image": "busybox"}], networkMode="awsvpc",
                                 requiresCompatibilities=["FARGATE"], cpu="256", memory="4096"),
                     "ClientException", "No Fargate configuration exists for given values", ci=False)
    assert e


def test_fargate_requires_awsvpc(ecs):
    expect_error(lambda: reg(ecs, uid("fgnet"), [{"name": "app", "image": "busybox"}], networkMode="bridge",
                             requiresCompatibilities=["FARGATE"], cpu="256", memory="512"),
                 "ClientException", "Fargate", "awsvpc")
    # no networkMode at all is bridge, which Fargate refuses too
    expect_error(lambda: reg(ecs, uid("fgnet"), [{"name": "app", "image": "busybox"}],
                             requiresCompatibilities=["FARGATE"], cpu="256", memory="512"),
                 "ClientException", "awsvpc")


def test_fargate_requires_task_cpu(ecs):
    expect_error(lambda: reg(ecs, uid("fgcpu"), [{"name": "app", "image": "busybox"}], networkMode="awsvpc",
                             requiresCompatibilities=["FARGATE"], memory="512"),
                 "ClientException", "Fargate requires that 'cpu' be defined at the task level.", ci=False)


# --- invalid definitions: names -------------------------------------------------------------------

@pytest.mark.parametrize("family", ["bad family", "bad/family", "bad.family", "bäd", "fam:1"])
def test_bad_family_characters(ecs, family):
    expect_error(lambda: reg(ecs, family, [container("app")]), TD_INVALID, "Family contains invalid characters.", ci=False)


def test_family_too_long(ecs):
    expect_error(lambda: reg(ecs, "x" * 256, [container("app")]), TD_INVALID, "family")


def test_family_name_of_255_chars_is_fine(ecs):
    fam = (uid("f").replace("-", "_") + "x" * 255)[:255]
    td = reg(ecs, fam, [container("app")])["taskDefinition"]
    assert td["family"] == fam


def test_empty_family(ecs_raw):
    expect_error(lambda: reg(ecs_raw, "", [container("app")]), TD_INVALID, "family")


@pytest.mark.parametrize("name", ["web app", "web.app", "web/app"])
def test_bad_container_name(ecs, name):
    expect_error(lambda: reg(ecs, uid("cname"), [container(name)]), TD_INVALID,
                 "Container.name contains invalid characters.", ci=False)


def test_container_name_too_long(ecs):
    expect_error(lambda: reg(ecs, uid("cname"), [container("x" * 256)]), TD_INVALID, "name")


def test_container_without_name(ecs_raw):
    expect_error(lambda: reg(ecs_raw, uid("noname"), [{"image": "busybox", "memory": 64}]), TD_INVALID,
                 "Container.name should not be null or empty.", ci=False)


def test_container_without_image(ecs_raw):
    expect_error(lambda: reg(ecs_raw, uid("noimg"), [{"name": "app", "memory": 64}]), TD_INVALID,
                 "Container.image should not be null or empty.", ci=False)


def test_empty_container_list(ecs_raw):
    expect_error(lambda: reg(ecs_raw, uid("empty"), []), TD_INVALID, "Container list cannot be empty.", ci=False)


def test_duplicate_container_names(ecs):
    expect_error(lambda: reg(ecs, uid("dup"), [container("app"), container("app")]), TD_INVALID,
                 "Container names must be unique", ci=False)


def test_no_essential_container(ecs):
    expect_error(lambda: reg(ecs, uid("noess"), [container("a", essential=False), container("b", essential=False)]),
                 TD_INVALID, "Task definition doesn't have any essential container.", ci=False)


def test_too_many_containers(ecs):
    expect_error(lambda: reg(ecs, uid("many"), [container(f"c{i}") for i in range(11)]), TD_INVALID_ANY)


def test_ten_containers_are_fine(ecs):
    td = reg(ecs, uid("ten"), [container(f"c{i}") for i in range(10)])["taskDefinition"]
    assert len(td["containerDefinitions"]) == 10


# --- invalid definitions: memory ------------------------------------------------------------------

def test_container_without_any_memory_on_ec2(ecs):
    expect_error(lambda: reg(ecs, uid("nomem"), [{"name": "app", "image": "busybox"}]), TD_INVALID,
                 "Invalid setting for container 'app'. At least one of 'memory' or 'memoryReservation' must be specified.",
                 ci=False)


def test_memory_reservation_above_memory(ecs):
    expect_error(lambda: reg(ecs, uid("memres"), [container("app", memory=128, memoryReservation=256)]),
                 TD_INVALID, "memory")


def test_memory_reservation_equal_to_memory_is_fine(ecs):
    td = reg(ecs, uid("memeq"), [container("app", memory=256, memoryReservation=256)])["taskDefinition"]
    assert td["containerDefinitions"][0]["memoryReservation"] == 256


# --- invalid definitions: ports -----------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["awsvpc", "host"])
def test_host_port_must_equal_container_port(ecs, mode):
    expect_error(lambda: reg(ecs, uid("ports"), [container("app", portMappings=[{"containerPort": 80, "hostPort": 8080}])],
                             networkMode=mode),
                 TD_INVALID, "host ports and container ports in port mappings must match")


def test_awsvpc_exact_message(ecs):
    expect_error(lambda: reg(ecs, uid("ports"), [container("app", portMappings=[{"containerPort": 80, "hostPort": 8080}])],
                             networkMode="awsvpc"),
                 TD_INVALID, "When networkMode=awsvpc, the host ports and container ports in port mappings must match.",
                 ci=False)


def test_bridge_allows_different_host_port(ecs):
    td = reg(ecs, uid("bridge"), [container("app", portMappings=[{"containerPort": 80, "hostPort": 8080}])],
             networkMode="bridge")["taskDefinition"]
    pm = td["containerDefinitions"][0]["portMappings"][0]
    assert (pm["containerPort"], pm["hostPort"]) == (80, 8080)


def test_invalid_container_port(ecs_raw):
    expect_error(lambda: reg(ecs_raw, uid("port"), [container("app", portMappings=[{"containerPort": 70000}])]),
                 TD_INVALID_ANY, "containerPort")


def test_invalid_network_mode(ecs_raw):
    expect_error(lambda: reg(ecs_raw, uid("net"), [container("app")], networkMode="overlay"), TD_INVALID_ANY)


# --- invalid definitions: dependsOn ---------------------------------------------------------------------

def test_depends_on_unknown_container(ecs):
    expect_error(lambda: reg(ecs, uid("dep"), [container("app", dependsOn=[{"containerName": "ghost", "condition": "START"}])]),
                 TD_INVALID, "Cannot depend on container + 'ghost' because it does not exist", ci=False)


def test_depends_on_bad_condition(ecs_raw):
    e = expect_error(lambda: reg(ecs_raw, uid("dep"), [container("app", dependsOn=[{"containerName": "side", "condition": "READY"}]),
                                                      container("side")]),
                     TD_INVALID_ANY)
    msg = e.response["Error"]["Message"]
    assert "condition" in msg.lower() or "READY" in msg, msg


def test_success_dependency_cannot_be_essential(ecs):
    expect_error(lambda: reg(ecs, uid("dep"), [container("app", dependsOn=[{"containerName": "init", "condition": "SUCCESS"}]),
                                               container("init", essential=True)]),
                 TD_INVALID, "A dependency container with SUCCESS or COMPLETE condition cannot be an essential container",
                 ci=False)


def test_depends_on_valid(ecs):
    td = reg(ecs, uid("dep"), [container("app", dependsOn=[{"containerName": "init", "condition": "COMPLETE"},
                                                           {"containerName": "side", "condition": "HEALTHY"}]),
                               container("init", essential=False),
                               container("side", healthCheck={"command": ["CMD", "true"]})])["taskDefinition"]
    assert td["containerDefinitions"][0]["dependsOn"] == [{"containerName": "init", "condition": "COMPLETE"},
                                                          {"containerName": "side", "condition": "HEALTHY"}]


# --- invalid definitions: task-level sums, logging, hostname ---------------------------------------------------

def test_container_cpu_sum_above_task_cpu(ecs):
    expect_error(lambda: reg(ecs, uid("sumcpu"), [container("a", cpu=200), container("b", cpu=200)], cpu="256"),
                 TD_INVALID, "The sum of all container 'cpu' values cannot be greater than the value of the task 'cpu'.",
                 ci=False)


def test_container_memory_reservation_sum_above_task_memory(ecs):
    a = {"name": "a", "image": "busybox", "memoryReservation": 200}
    b = {"name": "b", "image": "busybox", "memoryReservation": 200}
    expect_error(lambda: reg(ecs, uid("summem"), [a, b], memory="256"), TD_INVALID,
                 "The sum of all container 'memoryReservation' values cannot be greater than the value of the task 'memory'.",
                 ci=False)


def test_awslogs_requires_group_and_region(ecs):
    """ECS: ClientException "Log driver awslogs requires options: awslogs-region, awslogs-group"."""
    e = expect_error(lambda: reg(ecs, uid("awslogs"), [container("app", logConfiguration={"logDriver": "awslogs"})]),
                     TD_INVALID, "awslogs")
    msg = e.response["Error"]["Message"]
    assert "awslogs-group" in msg and "awslogs-region" in msg, msg


def test_hostname_not_supported_with_awsvpc(ecs):
    expect_error(lambda: reg(ecs, uid("hn"), [container("app", hostname="web")], networkMode="awsvpc"),
                 TD_INVALID, "hostname is not supported on container when networkMode=awsvpc.", ci=False)


def test_port_mapping_without_container_port(ecs):
    expect_error(lambda: reg(ecs, uid("nocp"), [container("app", portMappings=[{"hostPort": 7000}])]),
                 TD_INVALID, "Invalid 'containerPort' setting for container 'app'.", ci=False)


def test_host_port_mapped_twice(ecs):
    """ECS: ClientException "TCP host port '3000' is mapped multiple times in task."."""
    expect_error(lambda: reg(ecs, uid("dupport"), [container("a", portMappings=[{"containerPort": 80, "hostPort": 3000}]),
                                                   container("b", portMappings=[{"containerPort": 81, "hostPort": 3000}])]),
                 TD_INVALID, "TCP host port '3000' is mapped multiple times in task.", ci=False)


def test_same_host_port_different_protocols_is_fine(ecs):
    td = reg(ecs, uid("tcpudp"), [container("a", portMappings=[{"containerPort": 53, "hostPort": 53, "protocol": "tcp"},
                                                              {"containerPort": 53, "hostPort": 53, "protocol": "udp"}])])
    assert len(td["taskDefinition"]["containerDefinitions"][0]["portMappings"]) == 2


# --- invalid definitions: healthCheck ----------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [
    ("interval", 4), ("interval", 301),
    ("timeout", 1), ("timeout", 61),
    ("retries", 0), ("retries", 11),
    ("startPeriod", -1), ("startPeriod", 301),
])
def test_health_check_out_of_range(ecs_raw, field, value):
    hc = {"command": ["CMD-SHELL", "true"], field: value}
    expect_error(lambda: reg(ecs_raw, uid("hc"), [container("app", healthCheck=hc)]), TD_INVALID_ANY, field)


@pytest.mark.parametrize("field,value", [("interval", 5), ("interval", 300), ("timeout", 2), ("timeout", 60),
                                         ("retries", 1), ("retries", 10), ("startPeriod", 0), ("startPeriod", 300)])
def test_health_check_bounds_accepted(ecs, field, value):
    hc = {"command": ["CMD-SHELL", "true"], field: value}
    td = reg(ecs, uid("hcok"), [container("app", healthCheck=hc)])["taskDefinition"]
    assert td["containerDefinitions"][0]["healthCheck"][field] == value


# --- everything invalid is a 4xx -------------------------------------------------------------------------------

def test_garbage_container_fields_are_4xx(ecs_raw):
    bad = [
        [container("app", cpu=-1)],
        [container("app", memory=0)],
        [container("app", mountPoints=[{"sourceVolume": "nope", "containerPath": "/x"}])],
        [container("app", logConfiguration={"logDriver": "carrier-pigeon"})],
    ]
    for containers in bad:
        try:
            reg(ecs_raw, uid("garbage"), containers)
        except Exception as e:  # noqa: BLE001
            status = getattr(e, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
            assert status is not None and 400 <= status < 500, f"{containers}: {e}"
        else:
            raise AssertionError(f"accepted an invalid container definition: {containers}")


# --- concurrency -------------------------------------------------------------------------------------------

def test_concurrent_registrations_get_distinct_revisions(berth):
    """Many clients registering into one family at once: every acknowledged registration
    gets its own revision. ECS may refuse some under contention with ClientException
    "Too many concurrent attempts to create a new revision of the specified family.",
    never with a 5xx and never by handing out a revision twice."""
    import threading

    from botocore.exceptions import ClientError

    from berthlib import profile_client

    fam = uid("conc")
    results, errors = [], []
    lock = threading.Lock()

    def worker(w):
        ecs = profile_client()
        for i in range(10):
            try:
                r = ecs.register_task_definition(
                    family=fam, containerDefinitions=[container("app", environment=[{"name": "W", "value": f"{w}-{i}"}])])
            except ClientError as e:
                with lock:
                    errors.append(e)
                continue
            with lock:
                results.append((r["taskDefinition"]["revision"], f"{w}-{i}"))

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for e in errors:
        assert e.response["Error"]["Code"] == "ClientException", e
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400, e
    revs = [r for r, _ in results]
    assert len(revs) == len(set(revs)), f"a revision was handed out twice: {sorted(revs)}"
    assert len(results) >= 40, f"only {len(results)} of 80 concurrent registrations succeeded"
    ecs = profile_client()
    for rev, marker in results:
        env = ecs.describe_task_definition(taskDefinition=f"{fam}:{rev}")["taskDefinition"]["containerDefinitions"][0]["environment"]
        assert env == [{"name": "W", "value": marker}], (rev, marker, env)
