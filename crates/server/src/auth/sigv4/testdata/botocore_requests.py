#!/usr/bin/env python3
"""Regenerates botocore_requests.json: requests signed by botocore's own SigV4 signer.

The Rust test `botocore_tests` verifies each one with berth's verifier. botocore is the
signer behind the aws CLI v1 and boto3, so these are the bytes the clients that matter
most put on the wire. The clock is pinned, so the signatures are reproducible (only
botocore's random invocation ids change):

    python3 botocore_requests.py > botocore_requests.json
"""

import base64
import datetime
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading

import boto3
import botocore
import botocore.auth
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
ENDPOINT = "http://127.0.0.1:9270"
AKID = "AKIDBOTOCOREEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "FQoGZXIvYXdzEBYaDbotocore+session/token=="

botocore.auth.get_current_datetime = lambda: NOW


class Captured(Exception):
    """Raised from before-send so nothing goes on the network."""


def wire(prepared):
    """The request as the server receives it: method, raw target, headers, body.

    botocore leaves `Host` to urllib3, which sends the URL's host:port; added here.
    """
    url = botocore.compat.urlsplit(prepared.url)
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode()
    headers = [[k, v if isinstance(v, str) else v.decode()] for k, v in prepared.headers.items()]
    if not any(k.lower() == "host" for k, _ in headers):
        headers.insert(0, ["Host", url.netloc])
    return {
        "method": prepared.method,
        "path": url.path or "/",
        "query": url.query,
        "headers": headers,
        "body_base64": base64.b64encode(body).decode(),
    }


def via_client(name, service, call, token=None, **kwargs):
    """Makes one real client call and captures the signed request before it is sent."""
    session = boto3.Session(
        aws_access_key_id=AKID, aws_secret_access_key=SECRET, aws_session_token=token,
        region_name="us-east-1",
    )
    client = session.client(service, endpoint_url=ENDPOINT)
    captured = {}

    def capture(request, **_):
        captured.update(wire(request))
        raise Captured()

    client.meta.events.register("before-send", capture)
    try:
        getattr(client, call)(**kwargs)
    except Captured:
        pass
    return {"name": name, **captured}


def via_signer(name, method, url, headers, body, signer=SigV4Auth, service="ecs", **signer_args):
    """Signs a hand-made request with botocore's signer class directly."""
    creds = Credentials(AKID, SECRET)
    request = AWSRequest(method=method, url=url, headers=headers, data=body)
    signer(creds, service, "us-east-1", **signer_args).add_auth(request)
    return {"name": name, **wire(request.prepare())}


def presigned(name, service, call, token=None, **kwargs):
    """A presigned GET URL from the client, made the way `aws eks get-token` does."""
    session = boto3.Session(
        aws_access_key_id=AKID, aws_secret_access_key=SECRET, aws_session_token=token,
        region_name="us-east-1",
    )
    client = session.client(service, endpoint_url=ENDPOINT)
    url = botocore.compat.urlsplit(
        client.generate_presigned_url(call, Params=kwargs, ExpiresIn=600, HttpMethod="GET")
    )
    return {
        "name": name, "method": "GET", "path": url.path or "/", "query": url.query,
        "headers": [["Host", url.netloc]], "body_base64": "",
    }


def via_aws_cli(name, *args):
    """Runs the aws CLI v1 itself (clock pinned) with a berth profile in the form
    `auth::profile` writes, against a local listener that records the request."""
    captured = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            path, _, query = self.path.partition("?")
            captured.update({
                "method": "POST", "path": path, "query": query,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body_base64": base64.b64encode(body).decode(),
            })
            reply = b'{"clusterArns": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *_):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.handle_request, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "credentials"), "w") as f:
            f.write(f"[berth]\naws_access_key_id = {AKID}\naws_secret_access_key = {SECRET}\n")
        with open(os.path.join(tmp, "config"), "w") as f:
            f.write("[profile berth]\nregion = us-east-1\nservices = berth\n\n"
                    f"[services berth]\necs =\n  endpoint_url = {endpoint}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_CONFIG_FILE=os.path.join(tmp, "config"),
                   AWS_SHARED_CREDENTIALS_FILE=os.path.join(tmp, "credentials"))
        pinned = (
            "import sys, datetime, botocore.auth\n"
            f"botocore.auth.get_current_datetime = lambda: datetime.datetime.fromisoformat('{NOW.isoformat()}')\n"
            "from awscli.clidriver import main\n"
            "sys.exit(main())\n"
        )
        subprocess.run([sys.executable, "-c", pinned, "--profile", "berth", *args],
                       env=env, check=True, stdout=subprocess.DEVNULL)
    server.server_close()
    return {"name": name, **captured}


cases = [
    via_aws_cli("aws_cli_ecs_list_clusters", "ecs", "list-clusters"),
    via_client("ecs_list_clusters", "ecs", "list_clusters"),
    via_client("ecs_create_cluster_unicode", "ecs", "create_cluster", clusterName="caf\u00e9 \u2713"),
    via_client("ecs_with_session_token", "ecs", "list_clusters", token=TOKEN),
    via_client("iam_query_protocol", "iam", "list_users", PathPrefix="/a b/+c/"),
    via_signer(
        "odd_query_and_path", "GET",
        ENDPOINT + "/a//b/./c%20d/?b=2&a=1&a=0&empty=&flag&sp=x%20y&u=%E2%9C%93",
        {"X-Amz-Meta": "  spaced    value  "}, b"",
    ),
    via_signer(
        "date_header", "POST", ENDPOINT + "/",
        {"Date": "Thu, 01 Jan 1970 00:00:00 GMT", "Content-Type": "application/x-amz-json-1.1"},
        b"{}",
    ),
    via_signer(
        "presigned_sigv4_query_auth", "GET", ENDPOINT + "/?Action=ListUsers&Version=2010-05-08",
        {}, b"", signer=SigV4QueryAuth, service="iam", expires=900,
    ),
    presigned("sts_presigned_get_caller_identity", "sts", "get_caller_identity"),
    presigned("sts_presigned_with_session_token", "sts", "get_caller_identity", token=TOKEN),
]

print(json.dumps({
    "botocore_version": botocore.__version__,
    "now": NOW.strftime("%Y%m%dT%H%M%SZ"),
    "access_key_id": AKID,
    "secret_access_key": SECRET,
    "session_token": TOKEN,
    "requests": cases,
}, indent=2, ensure_ascii=False))
