"""Durability: a restarted server keeps everything; nothing acknowledged is lost when the
server is SIGKILLed at a random moment; revisions are never handed out twice."""

from __future__ import annotations

import json
import random
import threading
import time

from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError

from berthlib import container, profile_client, uid


def _populate(ecs):
    """Create one of everything in the milestone; return what to look for afterwards."""
    name = uid("dur")
    ecs.create_cluster(clusterName=name, tags=[{"key": "k", "value": "v"}],
                       settings=[{"name": "containerInsights", "value": "enabled"}])
    ecs.put_cluster_capacity_providers(cluster=name, capacityProviders=["FARGATE"],
                                       defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}])
    gone = uid("durgone")
    ecs.create_cluster(clusterName=gone)
    ecs.delete_cluster(cluster=gone)
    fam = uid("durfam")
    for i in range(3):
        ecs.register_task_definition(family=fam, containerDefinitions=[container("app", environment=[{"name": "I", "value": str(i)}])],
                                     tags=[{"key": "rev", "value": str(i + 1)}])
    ecs.deregister_task_definition(taskDefinition=f"{fam}:2")
    ecs.deregister_task_definition(taskDefinition=f"{fam}:3")
    ecs.delete_task_definitions(taskDefinitions=[f"{fam}:3"])
    ecs.put_account_setting(name="containerInstanceLongArnFormat", value="disabled")
    return name, gone, fam


def _snapshot(ecs, name, gone, fam):
    def strip(r):
        r.pop("ResponseMetadata", None)
        return r
    return {
        "cluster": strip(ecs.describe_clusters(clusters=[name, gone], include=["SETTINGS", "TAGS", "STATISTICS"])),
        "td1": strip(ecs.describe_task_definition(taskDefinition=f"{fam}:1", include=["TAGS"])),
        "td2": strip(ecs.describe_task_definition(taskDefinition=f"{fam}:2", include=["TAGS"])),
        "active": ecs.list_task_definitions(familyPrefix=fam)["taskDefinitionArns"],
        "inactive": ecs.list_task_definitions(familyPrefix=fam, status="INACTIVE")["taskDefinitionArns"],
        "families": ecs.list_task_definition_families(familyPrefix=fam)["families"],
        "tags": ecs.list_tags_for_resource(resourceArn=ecs.describe_clusters(clusters=[name])["clusters"][0]["clusterArn"])["tags"],
        "setting": [s for s in ecs.list_account_settings(name="containerInstanceLongArnFormat")["settings"]],
    }


def _check_restart(srv, hard: bool):
    srv.start()
    admin_before = srv.admin
    ecs = srv.client()
    keys = _populate(ecs)
    before = _snapshot(ecs, *keys)
    srv.restart(hard=hard)
    assert srv.admin == admin_before, "admin credentials changed across a restart"
    ecs = srv.client()
    after = _snapshot(ecs, *keys)
    assert after == before
    # revisions continue after the restart, and deleted ones are not reused
    fam = keys[2]
    assert ecs.register_task_definition(family=fam, containerDefinitions=[container("app")])["taskDefinition"]["revision"] == 4


def test_graceful_restart_keeps_everything(spawn_server):
    _check_restart(spawn_server("graceful"), hard=False)


def test_sigkill_restart_keeps_everything(spawn_server):
    _check_restart(spawn_server("sigkill"), hard=True)


def test_first_start_writes_admin_credentials_and_profile(spawn_server):
    srv = spawn_server("firststart")
    srv.start()
    a = srv.admin
    assert set(a) >= {"accessKeyId", "secretAccessKey", "region", "endpoint", "accountId"}, a
    assert a["region"] == "us-east-1" and a["accountId"] == "123456789012"
    assert a["endpoint"].rstrip("/") == srv.endpoint.rstrip("/")
    cfg = open(srv.env["AWS_CONFIG_FILE"]).read()
    creds = open(srv.env["AWS_SHARED_CREDENTIALS_FILE"]).read()
    assert "[profile berth]" in cfg and "[services berth]" in cfg, cfg
    assert a["accessKeyId"] in creds and a["secretAccessKey"] in creds
    srv.client().list_clusters()


def test_acknowledged_writes_survive_sigkill(spawn_server):
    """Writers register task definitions and record each acknowledged revision while another
    thread SIGKILLs the server at a random moment; after a restart every acknowledged
    revision describes, with the content that was acknowledged."""
    srv = spawn_server("kill")
    srv.start()
    rng = random.Random()
    acked: dict[str, list[tuple[int, str]]] = {}
    acked_clusters: dict[str, str | None] = {}
    rounds = 3
    for rnd in range(rounds):
        families = [uid(f"kill{rnd}w{w}") for w in range(3)]
        lock = threading.Lock()
        errors: list[BaseException] = []

        def writer(fam):
            ecs = srv.client(connect_timeout=2, read_timeout=10)
            seq = 0
            while True:
                seq += 1
                marker = f"{fam}-{seq}"
                try:
                    r = ecs.register_task_definition(
                        family=fam,
                        containerDefinitions=[container("app", environment=[{"name": "MARK", "value": marker}])])
                except (HTTPClientError, BotoConnectionError):
                    return  # the server is gone: this write was not acknowledged
                except BaseException as e:  # noqa: BLE001 - a 4xx/5xx before the kill is a failure
                    errors.append(e)
                    return
                with lock:
                    acked.setdefault(fam, []).append((r["taskDefinition"]["revision"], marker))

        def cluster_writer(prefix):
            ecs = srv.client(connect_timeout=2, read_timeout=10)
            seq = 0
            while True:
                seq += 1
                name = f"{prefix}-{seq}"
                try:
                    ecs.create_cluster(clusterName=name)
                    with lock:
                        acked_clusters[name] = None
                    ecs.tag_resource(resourceArn=srv.cluster_arn(name), tags=[{"key": "seq", "value": str(seq)}])
                    with lock:
                        acked_clusters[name] = str(seq)
                except (HTTPClientError, BotoConnectionError):
                    return
                except BaseException as e:  # noqa: BLE001
                    errors.append(e)
                    return

        threads = [threading.Thread(target=writer, args=(f,)) for f in families]
        threads.append(threading.Thread(target=cluster_writer, args=(uid(f"killc{rnd}"),)))
        for t in threads:
            t.start()
        # A random moment, but after a few acknowledgements even on a loaded machine.
        time.sleep(rng.uniform(0.3, 1.5))
        deadline = time.time() + 10
        while sum(len(v) for v in acked.values()) < 4 * (rnd + 1) and time.time() < deadline:
            time.sleep(0.05)
        srv.kill()
        for t in threads:
            t.join(30)
        assert not errors, f"writes failed before the kill: {errors[:3]}"
        srv.start()

    total = sum(len(v) for v in acked.values())
    assert total >= 10, f"only {total} writes were acknowledged before the kills; the test proved nothing"
    ecs = srv.client()
    for fam, revs in acked.items():
        numbers = [r for r, _ in revs]
        assert numbers == list(range(1, len(numbers) + 1)), f"{fam}: acknowledged revisions {numbers}"
        for rev, marker in revs:
            td = ecs.describe_task_definition(taskDefinition=f"{fam}:{rev}")["taskDefinition"]
            assert td["status"] == "ACTIVE"
            env = td["containerDefinitions"][0]["environment"]
            assert env == [{"name": "MARK", "value": marker}], f"{fam}:{rev} lost or changed: {env}"
        # a revision that was in flight when the server died may or may not exist, but the
        # next registration must never reuse an acknowledged number
        nxt = ecs.register_task_definition(family=fam, containerDefinitions=[container("app")])["taskDefinition"]["revision"]
        assert nxt > max(numbers), f"{fam}: revision {nxt} reused (acknowledged up to {max(numbers)})"
    assert len(acked_clusters) >= 3, f"only {len(acked_clusters)} clusters acknowledged"
    names = list(acked_clusters)
    for i in range(0, len(names), 100):
        resp = ecs.describe_clusters(clusters=names[i:i + 100], include=["TAGS"])
        assert resp["failures"] == [], resp["failures"][:5]
        for c in resp["clusters"]:
            assert c["status"] == "ACTIVE", c
            want = acked_clusters[c["clusterName"]]
            if want is not None:
                assert {"key": "seq", "value": want} in c.get("tags", []), (c["clusterName"], c.get("tags"))


def test_session_server_restart_keeps_profile_working(berth):
    """The session server restarts on the same data dir and port: the CLI profile it wrote
    still works and everything created before is there."""
    ecs = profile_client()
    name = uid("sess")
    arn = ecs.create_cluster(clusterName=name)["cluster"]["clusterArn"]
    fam = uid("sessfam")
    ecs.register_task_definition(family=fam, containerDefinitions=[container("app")])
    admin = json.dumps(berth.admin, sort_keys=True)
    berth.restart(hard=True)
    assert json.dumps(berth.admin, sort_keys=True) == admin
    ecs = profile_client()
    assert ecs.describe_clusters(clusters=[name])["clusters"][0]["clusterArn"] == arn
    assert ecs.describe_task_definition(taskDefinition=fam)["taskDefinition"]["revision"] == 1
