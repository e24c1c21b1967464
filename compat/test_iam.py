"""IAM and STS through boto3 and the aws CLI: entities, policies, keys, enforcement.

Most tests use the session server through the `berth` profile (which must point `iam`
and `sts` at berth). The expiry test runs its own server with the documented test hook
BERTH_IAM_SESSION_CAP_SECONDS, which caps temporary credentials' lifetime (AWS's floor
of DurationSeconds=900 is too long to wait for).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import xml.etree.ElementTree as ET

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.credentials import Credentials

from berthlib import NO_RETRY, REGION, BerthServer, berth_binary, expect_error, sign, uid

CFG = Config(retries=NO_RETRY)
IAM_NS = "{https://iam.amazonaws.com/doc/2010-05-08/}"


def doc(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action, resource="*", **extra):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource="*"):
    return {"Effect": "Deny", "Action": action, "Resource": resource}


def trust(principal) -> str:
    return doc({"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"})


@pytest.fixture(scope="module")
def iam(berth):
    return boto3.Session(profile_name="berth").client("iam", config=CFG)


@pytest.fixture(scope="module")
def sts(berth):
    return boto3.Session(profile_name="berth").client("sts", config=CFG)


def session_for(endpoint: str | None, key_id: str, secret: str, token: str | None = None) -> boto3.Session:
    return boto3.Session(aws_access_key_id=key_id, aws_secret_access_key=secret, aws_session_token=token,
                         region_name=REGION)


def clients(endpoint: str, key_id: str, secret: str, token: str | None = None):
    s = session_for(endpoint, key_id, secret, token)
    return tuple(s.client(n, endpoint_url=endpoint, config=CFG) for n in ("ecs", "iam", "sts"))


def new_user(iam, policy: str | None = None, name: str | None = None):
    """A user with an access key (and an inline policy, if given)."""
    name = name or uid("u")
    iam.create_user(UserName=name)
    if policy:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=policy)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return name, key


def denied_message(principal: str, action: str, resource: str, explicit: bool = False) -> str:
    tail = ("with an explicit deny in an identity-based policy" if explicit
            else f"because no identity-based policy allows the {action} action")
    return f"User: {principal} is not authorized to perform: {action} on resource: {resource} {tail}"


def test_profile_sends_iam_and_sts_to_berth(berth):
    config = open(os.environ["AWS_CONFIG_FILE"]).read()
    section = config.split("[services berth]", 1)[1]
    for service in ("ecs", "iam", "sts"):
        assert f"{service} =\n  endpoint_url = {berth.endpoint}" in section, config
    out = subprocess.run(["aws", "--profile", "berth", "sts", "get-caller-identity"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ident = json.loads(out.stdout)
    assert ident == {"UserId": berth.account, "Account": berth.account,
                     "Arn": f"arn:aws:iam::{berth.account}:root"}


def test_role_lifecycle_with_inline_and_managed_policies(iam, berth):
    name = uid("role")
    trust_doc = trust({"Service": "ecs-tasks.amazonaws.com"})
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_doc, Description="d",
                           Tags=[{"Key": "team", "Value": "a"}])["Role"]
    assert role["Arn"] == f"arn:aws:iam::{berth.account}:role/{name}"
    assert role["RoleId"].startswith("AROA") and len(role["RoleId"]) == 21
    assert role["MaxSessionDuration"] == 3600 and role["Path"] == "/"
    got = iam.get_role(RoleName=name)["Role"]
    assert got["AssumeRolePolicyDocument"] == json.loads(trust_doc)
    assert got["Description"] == "d" and got["Tags"] == [{"Key": "team", "Value": "a"}]
    assert name in [r["RoleName"] for r in iam.list_roles()["Roles"]]
    # The aws CLI pages through ListRoles (Marker / IsTruncated) with the profile alone.
    out = subprocess.run(["aws", "--profile", "berth", "iam", "list-roles", "--page-size", "1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert name in [r["RoleName"] for r in json.loads(out.stdout)["Roles"]]

    inline = doc(allow("ecs:ListClusters"))
    iam.put_role_policy(RoleName=name, PolicyName="inline", PolicyDocument=inline)
    assert iam.get_role_policy(RoleName=name, PolicyName="inline")["PolicyDocument"] == json.loads(inline)
    assert iam.list_role_policies(RoleName=name)["PolicyNames"] == ["inline"]

    pname = uid("pol")
    managed = doc(allow(["ecs:Describe*", "ecs:List*"]))
    policy = iam.create_policy(PolicyName=pname, PolicyDocument=managed)["Policy"]
    assert policy["Arn"] == f"arn:aws:iam::{berth.account}:policy/{pname}"
    assert policy["DefaultVersionId"] == "v1" and policy["AttachmentCount"] == 0
    assert policy["PolicyId"].startswith("ANPA")
    version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId="v1")["PolicyVersion"]
    assert version["Document"] == json.loads(managed) and version["IsDefaultVersion"] is True
    assert pname in [p["PolicyName"] for p in iam.list_policies(Scope="Local")["Policies"]]

    iam.attach_role_policy(RoleName=name, PolicyArn=policy["Arn"])
    attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
    assert attached == [{"PolicyName": pname, "PolicyArn": policy["Arn"]}]
    assert iam.get_policy(PolicyArn=policy["Arn"])["Policy"]["AttachmentCount"] == 1
    expect_error(lambda: iam.delete_policy(PolicyArn=policy["Arn"]), "DeleteConflict",
                 "Cannot delete a policy attached to entities.", status=409)
    expect_error(lambda: iam.delete_role(RoleName=name), "DeleteConflict", "must delete policies first", status=409)
    iam.delete_role_policy(RoleName=name, PolicyName="inline")
    expect_error(lambda: iam.delete_role(RoleName=name), "DeleteConflict", "must detach all policies first",
                 status=409)
    iam.detach_role_policy(RoleName=name, PolicyArn=policy["Arn"])
    iam.delete_policy(PolicyArn=policy["Arn"])
    iam.delete_role(RoleName=name)
    expect_error(lambda: iam.get_role(RoleName=name), "NoSuchEntity",
                 f"The role with name {name} cannot be found.", status=404)


def test_error_shapes(iam, berth):
    name = uid("role")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust({"AWS": berth.account}))
    expect_error(lambda: iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust("*")),
                 "EntityAlreadyExists", f"Role with name {name} already exists.", status=409)
    expect_error(lambda: iam.get_role_policy(RoleName=name, PolicyName="none"), "NoSuchEntity",
                 "The role policy with name none cannot be found.", status=404)
    expect_error(lambda: iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument="{not json"),
                 "MalformedPolicyDocument", "This policy contains invalid Json")
    expect_error(lambda: iam.put_role_policy(RoleName=name, PolicyName="p",
                                             PolicyDocument=doc({"Effect": "Allow", "Action": "ecs:*"})),
                 "MalformedPolicyDocument", "Policy statement must contain resources.")
    expect_error(lambda: iam.create_policy(PolicyName=uid("p"), PolicyDocument=doc({"Effect": "Permit",
                                                                                    "Action": "*", "Resource": "*"})),
                 "MalformedPolicyDocument", "Syntax errors in policy.")
    expect_error(lambda: iam.create_role(RoleName=uid("r"), AssumeRolePolicyDocument=doc(allow("sts:AssumeRole"))),
                 "MalformedPolicyDocument", "Has prohibited field Resource")
    expect_error(lambda: iam.attach_role_policy(RoleName=name, PolicyArn=f"arn:aws:iam::{berth.account}:policy/no"),
                 "NoSuchEntity", "does not exist or is not attachable", status=404)
    expect_error(lambda: iam.get_user(UserName="no-such-user"), "NoSuchEntity",
                 "The user with name no-such-user cannot be found.", status=404)
    # The raw wire form: IAM's namespace, Sender type, code and request id.
    body = "Action=GetRole&Version=2010-05-08&RoleName=absent"
    url = berth.endpoint + "/"
    headers = sign(url, body.encode(), {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
                   berth.credentials(), service="iam")
    resp = requests.post(url, data=body, headers=headers, timeout=10)
    assert resp.status_code == 404 and resp.headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(resp.text)
    assert root.tag == f"{IAM_NS}ErrorResponse"
    assert [e.text for e in root.find(f"{IAM_NS}Error")] == [
        "Sender", "NoSuchEntity", "The role with name absent cannot be found."]
    assert root.find(f"{IAM_NS}RequestId").text == resp.headers["x-amzn-RequestId"]
    iam.delete_role(RoleName=name)


def test_user_allowed_only_list_clusters(iam, berth):
    name, key = new_user(iam, doc(allow("ecs:ListClusters")))
    ecs, user_iam, _ = clients(berth.endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    assert key["AccessKeyId"].startswith("AKIA")
    cluster = uid("c")
    berth.client().create_cluster(clusterName=cluster)
    assert f"arn:aws:ecs:{REGION}:{berth.account}:cluster/{cluster}" in ecs.list_clusters()["clusterArns"]
    user_arn = f"arn:aws:iam::{berth.account}:user/{name}"
    cluster_arn = berth.cluster_arn(cluster)
    expect_error(lambda: ecs.delete_cluster(cluster=cluster), "AccessDeniedException",
                 denied_message(user_arn, "ecs:DeleteCluster", cluster_arn), ci=False)
    # The aws CLI sees the same refusal.
    env = dict(os.environ, AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"],
               AWS_DEFAULT_REGION=REGION)
    out = subprocess.run(["aws", "--endpoint-url", berth.endpoint, "ecs", "delete-cluster", "--cluster", cluster],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode != 0
    assert "AccessDeniedException" in out.stderr and "ecs:DeleteCluster" in out.stderr, out.stderr
    # IAM calls are authorized too, and refused in IAM's XML form.
    expect_error(lambda: user_iam.create_user(UserName=uid("x")), "AccessDenied",
                 f"User: {user_arn} is not authorized to perform: iam:CreateUser", status=403)
    assert berth.client().describe_clusters(clusters=[cluster])["clusters"][0]["status"] == "ACTIVE"


def test_explicit_deny_beats_allow_and_changes_apply_at_once(iam, berth):
    pname = uid("all-ecs")
    arn = iam.create_policy(PolicyName=pname, PolicyDocument=doc(allow("ecs:*")))["Policy"]["Arn"]
    name, key = new_user(iam, doc(deny("ecs:DeleteCluster", "arn:aws:ecs:*:*:cluster/keep-*")))
    iam.attach_user_policy(UserName=name, PolicyArn=arn)
    ecs, _, _ = clients(berth.endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    keep, scratch = uid("keep-"), uid("scratch-")
    for c in (keep, scratch):
        ecs.create_cluster(clusterName=c)
    expect_error(lambda: ecs.delete_cluster(cluster=keep), "AccessDeniedException",
                 denied_message(f"arn:aws:iam::{berth.account}:user/{name}", "ecs:DeleteCluster",
                                berth.cluster_arn(keep), explicit=True), ci=False)
    ecs.delete_cluster(cluster=scratch)
    # Removing the Deny takes effect on the next request (the policy cache is invalidated).
    iam.delete_user_policy(UserName=name, PolicyName="p")
    ecs.delete_cluster(cluster=keep)
    # And detaching the Allow leaves only the implicit deny.
    iam.detach_user_policy(UserName=name, PolicyArn=arn)
    expect_error(lambda: ecs.list_clusters(), "AccessDeniedException", "because no identity-based policy allows")


def test_policy_versions_change_what_is_allowed(iam, berth):
    arn = iam.create_policy(PolicyName=uid("ver"), PolicyDocument=doc(allow("ecs:ListClusters")))["Policy"]["Arn"]
    name, key = new_user(iam)
    iam.attach_user_policy(UserName=name, PolicyArn=arn)
    ecs, _, _ = clients(berth.endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    ecs.list_clusters()
    v2 = iam.create_policy_version(PolicyArn=arn, PolicyDocument=doc(allow("ecs:DescribeClusters")),
                                   SetAsDefault=True)["PolicyVersion"]
    assert (v2["VersionId"], v2["IsDefaultVersion"]) == ("v2", True)
    expect_error(lambda: ecs.list_clusters(), "AccessDeniedException", "ecs:ListClusters")
    assert [v["VersionId"] for v in iam.list_policy_versions(PolicyArn=arn)["Versions"]] == ["v1", "v2"]
    expect_error(lambda: iam.delete_policy_version(PolicyArn=arn, VersionId="v2"), "DeleteConflict",
                 "Cannot delete the default version of a policy.", status=409)
    iam.set_default_policy_version(PolicyArn=arn, VersionId="v1")
    ecs.list_clusters()
    iam.detach_user_policy(UserName=name, PolicyArn=arn)
    expect_error(lambda: iam.delete_policy(PolicyArn=arn), "DeleteConflict", "more than one version", status=409)
    iam.delete_policy_version(PolicyArn=arn, VersionId="v2")
    iam.delete_policy(PolicyArn=arn)


def test_conditions_on_the_cluster(iam, berth):
    policy = doc(allow("ecs:ListTasks", Condition={"ArnLike": {"ecs:cluster": "arn:aws:ecs:*:*:cluster/dev-*"}}))
    _, key = new_user(iam, policy)
    ecs, _, _ = clients(berth.endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    dev, prod = uid("dev-"), uid("prod-")
    for c in (dev, prod):
        berth.client().create_cluster(clusterName=c)
    assert ecs.list_tasks(cluster=dev)["taskArns"] == []
    expect_error(lambda: ecs.list_tasks(cluster=prod), "AccessDeniedException", "ecs:ListTasks")


def test_conditions_on_resource_tags(iam, berth):
    policy = doc(allow("ecs:DeleteCluster", Condition={"StringEquals": {"aws:ResourceTag/team": "blue"}}))
    _, key = new_user(iam, policy)
    ecs, _, _ = clients(berth.endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    blue, red, bare = uid("blue-"), uid("red-"), uid("bare-")
    admin = berth.client()
    admin.create_cluster(clusterName=blue, tags=[{"key": "team", "value": "blue"}])
    admin.create_cluster(clusterName=red, tags=[{"key": "team", "value": "red"}])
    admin.create_cluster(clusterName=bare)
    for denied in (red, bare):
        expect_error(lambda: ecs.delete_cluster(cluster=denied), "AccessDeniedException", "ecs:DeleteCluster")
    assert ecs.delete_cluster(cluster=blue)["cluster"]["status"] == "INACTIVE"


def test_get_caller_identity_answers_each_identity(iam, sts, berth):
    assert sts.get_caller_identity()["Arn"] == f"arn:aws:iam::{berth.account}:root"
    assert iam.get_user()["User"]["Arn"] == f"arn:aws:iam::{berth.account}:root"
    name, key = new_user(iam)
    user = iam.get_user(UserName=name)["User"]
    _, _, user_sts = clients(berth.endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    ident = user_sts.get_caller_identity()
    assert (ident["UserId"], ident["Arn"], ident["Account"]) == (user["UserId"], user["Arn"], berth.account)
    # GetUser with no name is the caller itself (and needs iam:GetUser on it).
    _, user_iam, _ = clients(berth.endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    expect_error(lambda: user_iam.get_user(), "AccessDenied", f"on resource: {user['Arn']}", status=403)


def assumable_role(iam, berth, principal=None, policy=None):
    name = uid("role")
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust(principal or {"AWS": berth.account}))["Role"]
    iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=policy or doc(allow("ecs:ListClusters")))
    return role


def test_assume_role_gives_credentials_that_act_as_the_role(iam, berth):
    role = assumable_role(iam, berth)
    name, key = new_user(iam, doc(allow("sts:AssumeRole", role["Arn"])))
    _, _, user_sts = clients(berth.endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    out = user_sts.assume_role(RoleArn=role["Arn"], RoleSessionName="s1", DurationSeconds=900)
    creds = out["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA") and creds["SessionToken"]
    session_arn = f"arn:aws:sts::{berth.account}:assumed-role/{role['RoleName']}/s1"
    assert out["AssumedRoleUser"] == {"AssumedRoleId": f"{role['RoleId']}:s1", "Arn": session_arn}
    ecs, _, role_sts = clients(berth.endpoint, creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    ident = role_sts.get_caller_identity()
    assert (ident["Arn"], ident["UserId"]) == (session_arn, f"{role['RoleId']}:s1")
    ecs.list_clusters()
    expect_error(lambda: ecs.delete_cluster(cluster="default"), "AccessDeniedException",
                 denied_message(session_arn, "ecs:DeleteCluster", berth.cluster_arn("default")), ci=False)
    # The session token is checked: without it, or with another, the key is refused.
    bare, _, _ = clients(berth.endpoint, creds["AccessKeyId"], creds["SecretAccessKey"])
    expect_error(lambda: bare.list_clusters(), "UnrecognizedClientException",
                 "The security token included in the request is invalid")
    forged, _, _ = clients(berth.endpoint, creds["AccessKeyId"], creds["SecretAccessKey"], "x" + creds["SessionToken"])
    expect_error(lambda: forged.list_clusters(), "UnrecognizedClientException")


def test_assume_role_is_refused_without_permission_or_trust(iam, sts, berth):
    role = assumable_role(iam, berth)
    name, key = new_user(iam, doc(allow("ecs:*")))
    _, _, user_sts = clients(berth.endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    user_arn = f"arn:aws:iam::{berth.account}:user/{name}"
    expect_error(lambda: user_sts.assume_role(RoleArn=role["Arn"], RoleSessionName="s2"), "AccessDenied",
                 f"User: {user_arn} is not authorized to perform: sts:AssumeRole on resource: {role['Arn']}",
                 status=403, ci=False)
    tasks_only = assumable_role(iam, berth, principal={"Service": "ecs-tasks.amazonaws.com"})
    expect_error(lambda: sts.assume_role(RoleArn=tasks_only["Arn"], RoleSessionName="s2"), "AccessDenied",
                 "sts:AssumeRole", status=403)
    expect_error(lambda: sts.assume_role(RoleArn=f"arn:aws:iam::{berth.account}:role/absent", RoleSessionName="s2"),
                 "AccessDenied", "sts:AssumeRole", status=403)
    expect_error(lambda: sts.assume_role(RoleArn=role["Arn"], RoleSessionName="s2", DurationSeconds=7200),
                 "ValidationError", "exceeds the MaxSessionDuration", status=400)


def test_deleted_access_key_stops_signing(iam, berth):
    name, key = new_user(iam, doc(allow("ecs:ListClusters")))
    ecs, _, _ = clients(berth.endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    ecs.list_clusters()
    listed = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
    assert [(k["AccessKeyId"], k["Status"]) for k in listed] == [(key["AccessKeyId"], "Active")]
    iam.create_access_key(UserName=name)
    expect_error(lambda: iam.create_access_key(UserName=name), "LimitExceeded",
                 "Cannot exceed quota for AccessKeysPerUser: 2", status=409)
    expect_error(lambda: iam.delete_user(UserName=name), "DeleteConflict", "must delete", status=409)
    iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
    expect_error(lambda: ecs.list_clusters(), "UnrecognizedClientException")


@pytest.fixture(scope="module")
def short_sessions(tmp_path_factory):
    """A server whose temporary credentials live 2 seconds (BERTH_IAM_SESSION_CAP_SECONDS)."""
    root = tmp_path_factory.mktemp("iam-short")
    env = dict(os.environ, BERTH_IAM_SESSION_CAP_SECONDS="2",
               AWS_CONFIG_FILE=str(root / "config"), AWS_SHARED_CREDENTIALS_FILE=str(root / "credentials"))
    srv = BerthServer(berth_binary(), root / "data", env=env, log_path=root / "server.log")
    srv.start()
    yield srv
    srv.kill()


def test_expired_credentials_are_refused(short_sessions):
    srv = short_sessions
    a = srv.admin
    _, admin_iam, admin_sts = clients(srv.endpoint, a["accessKeyId"], a["secretAccessKey"])
    role = assumable_role(admin_iam, srv)
    out = admin_sts.assume_role(RoleArn=role["Arn"], RoleSessionName="short", DurationSeconds=900)
    creds = out["Credentials"]
    ecs, _, sts = clients(srv.endpoint, creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    ecs.list_clusters()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.25)
        try:
            ecs.list_clusters()
        except ecs.exceptions.ClientError:
            break
    expect_error(lambda: ecs.list_clusters(), "ExpiredTokenException",
                 "The security token included in the request is expired")
    expect_error(lambda: sts.get_caller_identity(), "ExpiredToken",
                 "The security token included in the request is expired")
    # What IAM acknowledged survives SIGKILL: the role, a user's key and a live session.
    _, user_key = new_user(admin_iam, doc(allow("ecs:ListClusters")))
    live = admin_sts.assume_role(RoleArn=role["Arn"], RoleSessionName="live")["Credentials"]
    srv.restart(hard=True)
    user_ecs, _, _ = clients(srv.endpoint, user_key["AccessKeyId"], user_key["SecretAccessKey"])
    user_ecs.list_clusters()
    fresh = admin_sts.assume_role(RoleArn=role["Arn"], RoleSessionName="again")["Credentials"]
    for c in (live, fresh):
        ecs2, _, _ = clients(srv.endpoint, c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
        try:
            ecs2.list_clusters()
        except ecs2.exceptions.ClientError as e:
            # The 2-second cap may have run out for the session made before the restart.
            assert c is live and e.response["Error"]["Code"] == "ExpiredTokenException", e
