"""The Secrets Manager subset through boto3 and the aws CLI (the `berth` profile's
`[services berth]` section points `secrets_manager` at berth), its errors, its IAM
authorization, and its durability across a SIGKILL."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import boto3
import pytest
from botocore.config import Config

from berthlib import NO_RETRY, REGION, expect_error, uid

NOT_FOUND = "Secrets Manager can't find the specified secret."
MARKED = "because it was marked for deletion"


def sm_client(validate: bool = True, **kw):
    return boto3.Session(profile_name="berth").client(
        "secretsmanager", config=Config(retries=NO_RETRY, parameter_validation=validate), **kw)


@pytest.fixture(scope="module")
def sm(berth):
    return sm_client()


@pytest.fixture(scope="module")
def sm_raw(berth):
    return sm_client(validate=False)


def aws(*args, ok=True):
    p = subprocess.run(["aws", "--profile", "berth", "--output", "json", "secretsmanager", *args],
                       capture_output=True, text=True, env=os.environ.copy(), timeout=60)
    if not ok:
        assert p.returncode != 0, p.stdout
        return p.stderr
    assert p.returncode == 0, f"aws secretsmanager {' '.join(args)} exited {p.returncode}: {p.stderr}"
    return json.loads(p.stdout) if p.stdout.strip() else {}


def test_lifecycle_through_the_cli(berth):
    name = f"cli/{uid('s')}"
    created = aws("create-secret", "--name", name, "--secret-string", "v1", "--description", "from the CLI",
                  "--tags", "Key=team,Value=infra")
    assert re.fullmatch(rf"arn:aws:secretsmanager:{REGION}:{berth.account}:secret:{re.escape(name)}-[A-Za-z0-9]{{6}}",
                        created["ARN"]), created
    assert created["Name"] == name and created["VersionId"]
    got = aws("get-secret-value", "--secret-id", name)
    assert (got["SecretString"], got["ARN"], got["VersionStages"]) == ("v1", created["ARN"], ["AWSCURRENT"])
    put = aws("put-secret-value", "--secret-id", created["ARN"], "--secret-string", "v2")
    assert put["VersionStages"] == ["AWSCURRENT"] and put["VersionId"] != created["VersionId"]
    assert aws("get-secret-value", "--secret-id", name)["SecretString"] == "v2"
    previous = aws("get-secret-value", "--secret-id", name, "--version-stage", "AWSPREVIOUS")
    assert previous["SecretString"] == "v1" and previous["VersionId"] == created["VersionId"]
    d = aws("describe-secret", "--secret-id", name)
    assert d["Description"] == "from the CLI" and d["Tags"] == [{"Key": "team", "Value": "infra"}]
    assert d["VersionIdsToStages"] == {created["VersionId"]: ["AWSPREVIOUS"], put["VersionId"]: ["AWSCURRENT"]}
    listed = aws("list-secrets", "--filters", f"Key=name,Values={name}")["SecretList"]
    assert [s["Name"] for s in listed] == [name]
    deleted = aws("delete-secret", "--secret-id", name, "--force-delete-without-recovery")
    assert deleted["ARN"] == created["ARN"]
    err = aws("get-secret-value", "--secret-id", name, ok=False)
    assert "ResourceNotFoundException" in err and NOT_FOUND in err, err


def test_ids_are_names_full_arns_or_partial_arns(sm, berth):
    name = uid("ids")
    arn = sm.create_secret(Name=name, SecretString="x")["ARN"]
    partial = arn[:-7]
    for secret_id in (name, arn, partial):
        assert sm.get_secret_value(SecretId=secret_id)["ARN"] == arn, secret_id
    for wrong in (arn[:-6] + "zzzzzz", arn.replace(REGION, "eu-west-3"), f"{name}-nope"):
        expect_error(lambda: sm.get_secret_value(SecretId=wrong), "ResourceNotFoundException", NOT_FOUND, ci=False)
    binary = sm.create_secret(Name=uid("bin"), SecretBinary=b"\x00\x01raw")
    assert sm.get_secret_value(SecretId=binary["ARN"])["SecretBinary"] == b"\x00\x01raw"
    empty = sm.create_secret(Name=uid("empty"))
    assert "VersionId" not in empty
    expect_error(lambda: sm.get_secret_value(SecretId=empty["ARN"]), "ResourceNotFoundException", "AWSCURRENT")


def test_input_errors(sm, sm_raw):
    name = uid("dup")
    sm.create_secret(Name=name, SecretString="a")
    expect_error(lambda: sm.create_secret(Name=name, SecretString="b"), "ResourceExistsException",
                 f"the secret {name} already exists")
    expect_error(lambda: sm.create_secret(Name="bad name!", SecretString="a"), "InvalidParameterException",
                 "Invalid name")
    expect_error(lambda: sm.create_secret(Name=uid("both"), SecretString="a", SecretBinary=b"b"),
                 "InvalidParameterException", "both a binary secret value and a string")
    expect_error(lambda: sm.put_secret_value(SecretId=name), "InvalidParameterException", "SecretString")
    expect_error(lambda: sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True, RecoveryWindowInDays=7),
                 "InvalidParameterException", "in conjunction with RecoveryWindowInDays")
    expect_error(lambda: sm.delete_secret(SecretId=name, RecoveryWindowInDays=3), "InvalidParameterException",
                 "between 7 and 30 days")
    expect_error(lambda: sm_raw.get_secret_value(), "InvalidParameterException", "secretId")
    for call in (lambda: sm.describe_secret(SecretId=uid("none")), lambda: sm.delete_secret(SecretId=uid("none")),
                 lambda: sm.put_secret_value(SecretId=uid("none"), SecretString="x")):
        expect_error(call, "ResourceNotFoundException", NOT_FOUND, ci=False)


def test_client_request_tokens_are_idempotent(sm):
    name = uid("tok")
    token = "a" * 32
    first = sm.create_secret(Name=name, SecretString="one", ClientRequestToken=token)
    assert first["VersionId"] == token
    again = sm.put_secret_value(SecretId=name, SecretString="one", ClientRequestToken=token)
    assert again["VersionId"] == token and again["VersionStages"] == ["AWSCURRENT"]
    expect_error(lambda: sm.put_secret_value(SecretId=name, SecretString="two", ClientRequestToken=token),
                 "ResourceExistsException", "existing version")
    assert len(sm.describe_secret(SecretId=name)["VersionIdsToStages"]) == 1


def test_scheduled_deletion_refuses_the_secret(sm):
    name = uid("sched")
    arn = sm.create_secret(Name=name, SecretString="keep")["ARN"]
    out = sm.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    days = (out["DeletionDate"].timestamp() - time.time()) / 86400
    assert 6.9 < days < 7.1, out
    for call in (lambda: sm.get_secret_value(SecretId=arn), lambda: sm.put_secret_value(SecretId=arn, SecretString="x"),
                 lambda: sm.delete_secret(SecretId=arn)):
        expect_error(call, "InvalidRequestException", MARKED)
    expect_error(lambda: sm.create_secret(Name=name, SecretString="again"), "InvalidRequestException",
                 "already scheduled for deletion")
    assert "DeletedDate" in sm.describe_secret(SecretId=arn)
    visible = lambda **kw: [s["Name"] for s in sm.list_secrets(Filters=[{"Key": "name", "Values": [name]}], **kw)["SecretList"]]
    assert visible() == [] and visible(IncludePlannedDeletion=True) == [name]
    sm.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    expect_error(lambda: sm.describe_secret(SecretId=arn), "ResourceNotFoundException", NOT_FOUND, ci=False)
    assert sm.create_secret(Name=name, SecretString="new")["ARN"] != arn


def test_list_secrets_pages(sm):
    base = f"page/{uid('p')}"
    names = [f"{base}/{i}" for i in range(5)]
    for n in names:
        sm.create_secret(Name=n, SecretString="v")
    pages = sm.get_paginator("list_secrets").paginate(Filters=[{"Key": "name", "Values": [base]}],
                                                      PaginationConfig={"PageSize": 2})
    sizes, got = [], []
    for p in pages:
        sizes.append(len(p["SecretList"]))
        got += [s["Name"] for s in p["SecretList"]]
    assert got == names and sizes[:2] == [2, 2], (sizes, got)
    assert "SecretString" not in json.dumps(sm.list_secrets(MaxResults=1)["SecretList"][0], default=str)
    expect_error(lambda: sm.list_secrets(Filters=[{"Key": "tag-key", "Values": ["x"]}]), "InvalidParameterException",
                 "name only")


def test_calls_are_authorized_by_iam(berth, sm):
    """A user allowed GetSecretValue on one prefix reads those secrets and nothing else."""
    iam = boto3.Session(profile_name="berth").client("iam")
    prefix = uid("team")
    mine = sm.create_secret(Name=f"{prefix}/db", SecretString="mine")["ARN"]
    other = sm.create_secret(Name=f"{uid('other')}/db", SecretString="theirs")["ARN"]
    user = uid("reader")
    iam.create_user(UserName=user)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                                                      "Resource": f"arn:aws:secretsmanager:*:*:secret:{prefix}/*"}]}
    iam.put_user_policy(UserName=user, PolicyName="read", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    as_user = sm_client(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    assert as_user.get_secret_value(SecretId=f"{prefix}/db")["SecretString"] == "mine"
    assert as_user.get_secret_value(SecretId=mine)["SecretString"] == "mine"
    e = expect_error(lambda: as_user.get_secret_value(SecretId=other), "AccessDeniedException",
                     "secretsmanager:GetSecretValue", other)
    assert "mine" not in str(e) and "theirs" not in str(e)
    expect_error(lambda: as_user.create_secret(Name=f"{prefix}/new", SecretString="x"), "AccessDeniedException",
                 "secretsmanager:CreateSecret")
    expect_error(lambda: as_user.list_secrets(), "AccessDeniedException", "secretsmanager:ListSecrets")


def test_secrets_survive_a_sigkill(spawn_server):
    srv = spawn_server("secrets").start()
    a = srv.admin
    client = lambda: boto3.session.Session().client(
        "secretsmanager", region_name=REGION, endpoint_url=srv.endpoint, aws_access_key_id=a["accessKeyId"],
        aws_secret_access_key=a["secretAccessKey"], config=Config(retries=NO_RETRY))
    sm = client()
    arn = sm.create_secret(Name="durable", SecretString="v1")["ARN"]
    sm.put_secret_value(SecretId=arn, SecretString="v2")
    sm.create_secret(Name="doomed", SecretString="x")
    sm.delete_secret(SecretId="doomed", ForceDeleteWithoutRecovery=True)
    srv.restart(hard=True)
    sm = client()
    got = sm.get_secret_value(SecretId=arn)
    assert got["SecretString"] == "v2" and got["ARN"] == arn
    assert sm.get_secret_value(SecretId=arn, VersionStage="AWSPREVIOUS")["SecretString"] == "v1"
    expect_error(lambda: sm.get_secret_value(SecretId="doomed"), "ResourceNotFoundException", NOT_FOUND, ci=False)
