"""AWS JSON 1.1 protocol and SigV4 behaviour, driven with raw HTTP.

Each request is signed with botocore's own SigV4 signer so that only the one
thing under test is wrong. Error shapes follow AWS JSON 1.1: HTTP 400,
`x-amzn-RequestId`, `x-amzn-ErrorType`, body `{"__type", "message"}`.
"""

from __future__ import annotations

import datetime
import json
import socket
import uuid

import requests
from botocore.compat import get_current_datetime
from botocore.credentials import Credentials

from berthlib import DEFAULT_ACCOUNT, TARGET_PREFIX, assert_raw_error, container, raw_call, sign, uid


# --- success responses ----------------------------------------------------------

def test_success_response_headers_and_body(berth):
    r = raw_call(berth, "ListClusters", {})
    assert r.status_code == 200, r.text
    assert r.headers.get("Content-Type", "").startswith("application/x-amz-json-1.1")
    rid = r.headers.get("x-amzn-RequestId")
    assert rid, dict(r.headers)
    uuid.UUID(rid)  # AWS request ids are UUIDs
    assert "x-amzn-ErrorType" not in r.headers
    body = r.json()
    assert isinstance(body.get("clusterArns"), list)


def test_request_ids_are_unique(berth):
    ids = {raw_call(berth, "ListClusters", {}).headers["x-amzn-RequestId"] for _ in range(5)}
    assert len(ids) == 5


def test_unknown_members_are_ignored(berth):
    """AWS ignores members it does not know (forward compatibility for newer SDKs)."""
    r = raw_call(berth, "ListClusters", {"someFutureMember": {"a": [1, 2]}, "anotherOne": "x"})
    assert r.status_code == 200, r.text
    name = uid("unk")
    r = raw_call(berth, "CreateCluster", {"clusterName": name, "notAMember": True})
    assert r.status_code == 200, r.text
    assert r.json()["cluster"]["clusterName"] == name
    fam = uid("unkfam")
    r = raw_call(berth, "RegisterTaskDefinition", {
        "family": fam,
        "containerDefinitions": [dict(container("app"), futureContainerField=1)],
        "futureTaskField": {"x": 1},
    })
    assert r.status_code == 200, r.text
    assert r.json()["taskDefinition"]["family"] == fam


# --- protocol errors --------------------------------------------------------------

def test_unknown_operation(berth):
    r = raw_call(berth, "FrobnicateWidgets", {})
    assert_raw_error(r, 400, "UnknownOperationException")


def test_foreign_target_prefix_is_unknown_operation(berth):
    r = raw_call(berth, None, {}, target="DynamoDB_20120810.ListTables")
    assert_raw_error(r, 400, "UnknownOperationException")


def test_malformed_json(berth):
    r = raw_call(berth, "CreateCluster", b'{"clusterName": ')
    assert_raw_error(r, 400, "SerializationException")


def test_json_that_is_not_an_object(berth):
    r = raw_call(berth, "ListClusters", b"[1, 2, 3]")
    assert_raw_error(r, 400, "SerializationException")


def test_wrong_json_type_for_string_member(berth):
    r = raw_call(berth, "RegisterTaskDefinition", {"family": 5, "containerDefinitions": [container("app")]})
    assert_raw_error(r, 400, "SerializationException")


def test_wrong_json_type_for_integer_member(berth):
    r = raw_call(berth, "ListClusters", {"maxResults": "x"})
    assert_raw_error(r, 400, "SerializationException")


def test_wrong_json_type_for_list_member(berth):
    r = raw_call(berth, "DescribeClusters", {"clusters": "default"})
    assert_raw_error(r, 400, "SerializationException")


def test_missing_required_container_definitions(berth):
    """ECS answers a RegisterTaskDefinition without containers with ClientException
    "Container list cannot be empty." (observed through CloudFormation with no
    ContainerDefinitions), not a generic validation error."""
    r = raw_call(berth, "RegisterTaskDefinition", {"family": uid("noctr")})
    assert_raw_error(r, 400, "ClientException", "container")


def test_missing_required_family(berth):
    """ECS answers a RegisterTaskDefinition without `family` with "Family can not be blank."
    (observed through the JS SDK, which does not validate required members client-side);
    RegisterTaskDefinition's validation errors are ClientExceptions."""
    r = raw_call(berth, "RegisterTaskDefinition", {"containerDefinitions": [container("app")]})
    assert_raw_error(r, 400, "ClientException", "family")


def test_body_over_size_limit_is_4xx(berth):
    """A huge request must be refused with a 4xx (e.g. 413), not a 5xx or a crash.
    The padding lives in an unknown member, so a server without a limit would answer 200."""
    pad = "x" * (16 * 1024 * 1024)
    body = json.dumps({"padding": pad}).encode()
    url = berth.endpoint + "/"
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"{TARGET_PREFIX}.ListClusters"}
    headers = sign(url, body, headers, berth.credentials())
    status = _post_tolerating_early_close(berth.port, headers, body)
    assert status is not None and 400 <= status < 500, f"oversized body answered with {status}"
    assert berth.alive()
    assert raw_call(berth, "ListClusters", {}).status_code == 200


def _post_tolerating_early_close(port: int, headers: dict, body: bytes):
    """Send a request over a raw socket; a server may answer 413 and close before reading
    the whole body, which `requests` reports as a broken pipe. Returns the status or None."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        head = "POST / HTTP/1.1\r\n"
        hdrs = dict(headers)
        hdrs.setdefault("Host", f"127.0.0.1:{port}")
        hdrs["Content-Length"] = str(len(body))
        hdrs["Connection"] = "close"
        for k, v in hdrs.items():
            head += f"{k}: {v}\r\n"
        s.sendall(head.encode() + b"\r\n")
        try:
            view = memoryview(body)
            for i in range(0, len(body), 65536):
                s.sendall(view[i:i + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        if not data.startswith(b"HTTP/1."):
            return None
        return int(data.split(b" ", 2)[1])
    finally:
        s.close()


# --- authentication ----------------------------------------------------------------

def test_unsigned_request(berth):
    r = raw_call(berth, "ListClusters", {}, signed=False)
    assert_raw_error(r, 400, "MissingAuthenticationTokenException", "missing authentication token")


def test_bad_signature(berth):
    good = berth.credentials()
    wrong_secret = Credentials(good.access_key, good.secret_key[:-4] + "abcd")
    r = raw_call(berth, "ListClusters", {}, creds=wrong_secret)
    assert_raw_error(r, 400, "InvalidSignatureException", "signature we calculated does not match")


def test_tampered_body_fails_signature(berth):
    url = berth.endpoint + "/"
    headers = sign(url, b'{"maxResults": 5}', {"Content-Type": "application/x-amz-json-1.1",
                                                "X-Amz-Target": f"{TARGET_PREFIX}.ListClusters"},
                   berth.credentials())
    r = requests.post(url, data=b'{"maxResults": 6}', headers=headers, timeout=30)
    assert_raw_error(r, 400, "InvalidSignatureException")


def test_unknown_access_key(berth):
    stranger = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    r = raw_call(berth, "ListClusters", {}, creds=stranger)
    assert_raw_error(r, 400, "UnrecognizedClientException", "security token included in the request is invalid")


def test_expired_signature(berth):
    past = get_current_datetime() - datetime.timedelta(hours=2)
    r = raw_call(berth, "ListClusters", {}, when=past)
    assert_raw_error(r, 400, "InvalidSignatureException", "Signature expired")


def test_signature_from_the_future(berth):
    future = get_current_datetime() + datetime.timedelta(hours=2)
    r = raw_call(berth, "ListClusters", {}, when=future)
    assert_raw_error(r, 400, "InvalidSignatureException", "signature")


def test_arns_carry_the_signing_region(berth):
    """One berth endpoint serves every region (docs/api.md): ARNs take the region from the
    request's credential scope, as the issue asks."""
    name = uid("region")
    r = raw_call(berth, "CreateCluster", {"clusterName": name}, region="eu-west-1")
    assert r.status_code == 200, r.text
    assert r.json()["cluster"]["clusterArn"] == f"arn:aws:ecs:eu-west-1:{DEFAULT_ACCOUNT}:cluster/{name}"


def test_credential_scoped_to_wrong_service(berth):
    """AWS: InvalidSignatureException "Credential should be scoped to correct service: 'ecs'."."""
    r = raw_call(berth, "ListClusters", {}, service="ec2")
    assert_raw_error(r, 400, "InvalidSignatureException", "service")


def test_malformed_authorization_header(berth):
    r = raw_call(berth, "ListClusters", {}, signed=False,
                 extra_headers={"Authorization": "AWS4-HMAC-SHA256 garbage", "X-Amz-Date": "20260101T000000Z"})
    assert_raw_error(r, 400, "IncompleteSignatureException")


def test_small_clock_skew_is_accepted(berth):
    """AWS tolerates 15 minutes of skew."""
    r = raw_call(berth, "ListClusters", {}, when=get_current_datetime() - datetime.timedelta(minutes=4))
    assert r.status_code == 200, r.text


def test_errors_from_handlers_have_full_shape(berth):
    r = raw_call(berth, "DeleteCluster", {"cluster": uid("nosuch")})
    body = assert_raw_error(r, 400, "ClusterNotFoundException")
    assert body.get("message") == "Cluster not found."


def test_get_is_not_an_operation(berth):
    r = requests.get(berth.endpoint + "/", timeout=30)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:200])
