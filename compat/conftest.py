"""Session fixtures for the berth real-client compatibility suite.

One `berth server` serves the whole session, on a temporary data dir and a
free port. Before anything starts, AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE
point at temporary files (pre-seeded with an unrelated profile that the server
must leave alone), so the real ~/.aws is never read or written. Tests then use
`boto3.Session(profile_name="berth")` and `aws --profile berth` with no
endpoint flags: that is the profile the server wrote.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from berthlib import BerthServer, berth_binary, profile_client  # noqa: E402

# --- isolate every AWS client in this process (and its children) -------------
_AWS_HOME = Path(tempfile.mkdtemp(prefix="berth-compat-aws-"))
AWS_CONFIG_FILE = _AWS_HOME / "config"
AWS_CREDENTIALS_FILE = _AWS_HOME / "credentials"
for _var in (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION",
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ECS", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_CA_BUNDLE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
):
    os.environ.pop(_var, None)
os.environ["AWS_CONFIG_FILE"] = str(AWS_CONFIG_FILE)
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(AWS_CREDENTIALS_FILE)
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ["AWS_PAGER"] = ""
# A user's existing profile: berth must add its own without clobbering this one.
AWS_CONFIG_FILE.write_text("[profile other]\nregion = eu-west-3\noutput = text\n")
AWS_CREDENTIALS_FILE.write_text(
    "[other]\naws_access_key_id = AKIAOTHEROTHEROTHER1\naws_secret_access_key = other/secret/key\n"
)


def pytest_report_header(config):
    b = berth_binary()
    state = "present" if b.exists() else "MISSING"
    return [f"berth binary: {b} ({state})", f"isolated AWS config: {_AWS_HOME}"]


@pytest.fixture(scope="session")
def berth(tmp_path_factory) -> BerthServer:
    """The session's server (the one that owns the `berth` CLI profile)."""
    binary = berth_binary()
    if not binary.exists():
        pytest.fail(
            f"berth binary not found at {binary}: build it (cargo build) or set BERTH_BIN. "
            "The compatibility suite never skips; it fails without a server.",
            pytrace=False,
        )
    root = tmp_path_factory.mktemp("berth-session")
    srv = BerthServer(binary, root / "data", env=os.environ.copy(), log_path=root / "server.log")
    try:
        srv.start()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def ecs(berth):
    """boto3 ECS client from the `berth` profile (client-side validation on, no retries)."""
    return profile_client()


@pytest.fixture(scope="session")
def ecs_raw(berth):
    """Same, without botocore's client-side parameter validation, so the server sees bad input."""
    return profile_client(validate=False)


@pytest.fixture
def spawn_server(tmp_path):
    """Factory for extra short-lived servers (restart / kill tests). Each gets its own data
    dir and its own AWS config files so it never rewrites the session's `berth` profile."""
    servers: list[BerthServer] = []

    def make(name: str = "extra") -> BerthServer:
        home = tmp_path / f"{name}-aws"
        home.mkdir()
        env = os.environ.copy()
        env["AWS_CONFIG_FILE"] = str(home / "config")
        env["AWS_SHARED_CREDENTIALS_FILE"] = str(home / "credentials")
        srv = BerthServer(berth_binary(), tmp_path / f"{name}-data", env=env, log_path=tmp_path / f"{name}.log")
        servers.append(srv)
        return srv

    if not berth_binary().exists():
        pytest.fail(f"berth binary not found at {berth_binary()}", pytrace=False)
    yield make
    for s in servers:
        s.kill()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of the session server's log to the report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        srv = item.funcargs.get("berth")
        if isinstance(srv, BerthServer):
            rep.sections.append(("berth server log (tail)", srv.log_tail(40)))


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_AWS_HOME, ignore_errors=True)
