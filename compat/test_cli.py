"""The aws CLI (v1) against berth through the `berth` profile the server wrote:
`aws --profile berth ecs ...` with no endpoint flags."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from berthlib import uid

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "webapp-taskdef.json"


def aws(*args, check=True):
    env = os.environ.copy()
    p = subprocess.run(["aws", "--profile", "berth", "--output", "json", *args],
                       capture_output=True, text=True, env=env, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} exited {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def aws_json(*args):
    return json.loads(aws(*args).stdout)


@pytest.fixture(scope="module")
def cli_family(berth, tmp_path_factory):
    """The realistic fixture registered once through the CLI, under a unique family."""
    d = json.loads(FIXTURE.read_text())
    d["family"] = uid("webapp-cli")
    path = tmp_path_factory.mktemp("cli") / "taskdef.json"
    path.write_text(json.dumps(d))
    out = aws_json("ecs", "register-task-definition", "--cli-input-json", f"file://{path}")
    return d, out


def test_profile_written_next_to_existing_one(berth):
    cfg = Path(os.environ["AWS_CONFIG_FILE"]).read_text()
    creds = Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"]).read_text()
    assert "[profile berth]" in cfg and "[services berth]" in cfg, cfg
    assert "[profile other]" in cfg and "eu-west-3" in cfg, "the user's existing profile was clobbered"
    assert "[berth]" in creds and "[other]" in creds and "AKIAOTHEROTHEROTHER1" in creds
    assert berth.admin["accessKeyId"] in creds


def test_create_and_list_clusters(berth):
    name = uid("cli")
    out = aws_json("ecs", "create-cluster", "--cluster-name", name, "--tags", "key=team,value=cli")
    c = out["cluster"]
    assert c["clusterArn"] == berth.cluster_arn(name)
    assert c["status"] == "ACTIVE"
    assert c["tags"] == [{"key": "team", "value": "cli"}]
    listed = aws_json("ecs", "list-clusters")["clusterArns"]  # the CLI follows nextToken itself
    assert berth.cluster_arn(name) in listed
    desc = aws_json("ecs", "describe-clusters", "--clusters", name, "--include", "TAGS")
    assert desc["clusters"][0]["tags"] == [{"key": "team", "value": "cli"}]
    assert desc["failures"] == []


def test_register_task_definition_from_file(berth, cli_family):
    sent, out = cli_family
    td = out["taskDefinition"]
    assert td["family"] == sent["family"] and td["revision"] == 1
    assert td["taskDefinitionArn"] == berth.td_arn(sent["family"], 1)
    assert [c["name"] for c in td["containerDefinitions"]] == ["web", "migrate", "log-router"]
    web = td["containerDefinitions"][0]
    assert web["healthCheck"]["startPeriod"] == 20
    assert web["dependsOn"] == sent["containerDefinitions"][0]["dependsOn"]
    assert web["linuxParameters"]["capabilities"] == {"add": ["NET_ADMIN"], "drop": ["MKNOD"]}
    assert sorted(out["tags"], key=lambda t: t["key"]) == sorted(sent["tags"], key=lambda t: t["key"])
    assert isinstance(td["registeredAt"], (str, int, float))


def test_describe_task_definition(berth, cli_family):
    sent, out = cli_family
    d = aws_json("ecs", "describe-task-definition", "--task-definition", sent["family"], "--include", "TAGS")
    assert d["taskDefinition"] == out["taskDefinition"]
    assert sorted(d["tags"], key=lambda t: t["key"]) == sorted(sent["tags"], key=lambda t: t["key"])
    by_rev = aws_json("ecs", "describe-task-definition", "--task-definition", f"{sent['family']}:1")
    assert by_rev["taskDefinition"]["taskDefinitionArn"] == berth.td_arn(sent["family"], 1)


def test_list_task_definitions(berth, cli_family):
    sent, _ = cli_family
    arns = aws_json("ecs", "list-task-definitions", "--family-prefix", sent["family"])["taskDefinitionArns"]
    assert arns == [berth.td_arn(sent["family"], 1)]
    fams = aws_json("ecs", "list-task-definition-families", "--family-prefix", sent["family"])["families"]
    assert fams == [sent["family"]]


def test_error_exit_code_and_type(berth):
    p = aws("ecs", "describe-task-definition", "--task-definition", uid("nosuch"), check=False)
    assert p.returncode != 0
    assert "ClientException" in p.stderr, p.stderr
    assert "Unable to describe task definition" in p.stderr, p.stderr
    p = aws("ecs", "delete-cluster", "--cluster", uid("nosuch"), check=False)
    assert p.returncode != 0
    assert "ClusterNotFoundException" in p.stderr, p.stderr


def test_cli_with_bad_credentials_fails(berth, tmp_path):
    """Sanity: the CLI really talks to berth through the profile (a wrong secret is refused)."""
    creds = tmp_path / "credentials"
    original = Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"]).read_text()
    key = berth.admin["secretAccessKey"]
    creds.write_text(original.replace(key, "x" * len(key)))
    env = os.environ.copy()
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(creds)
    p = subprocess.run(["aws", "--profile", "berth", "ecs", "list-clusters"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode != 0
    assert "InvalidSignatureException" in p.stderr, p.stderr
