"""Time to steady state of a 20-task service on real containers.

Two agents (runc containers, bridge networking) on this host, a busybox image in a loopback
docker-registry (pulled once before timing), and a server whose tasks without health checks
count as healthy at once (`--task-healthy-after 0`, so the figure is berth's and not ECS's
40-second wait). Prints the median over BENCH_RUNS runs of CreateService (desiredCount 20)
until DescribeServices shows one COMPLETED deployment with runningCount 20, and of a rolling
deployment of the same service to a new revision.

Run it through `scripts/bench-services` (release build, root)."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "compat"))

from berthlib import BerthServer, berth_binary, uid  # noqa: E402
from fleet import Agent, Registry, build_rootfs, subnet, wait_registered  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
TASKS = 20


def steady(ecs, cluster: str, name: str, primary: str | None = None, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = ecs.describe_services(cluster=cluster, services=[name])["services"][0]
        d = s["deployments"]
        if (len(d) == 1 and d[0]["rolloutState"] == "COMPLETED" and s["runningCount"] == s["desiredCount"]
                and primary in (None, d[0]["id"])):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not reach a steady state")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="berth-bench-services-"))
    env = dict(os.environ, AWS_CONFIG_FILE=str(work / "aws-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(work / "aws-credentials"), BERTH_TASK_HEALTHY_AFTER="0")
    server = BerthServer(berth_binary(), work / "server", env=env, log_path=work / "server.log").start()
    registry = Registry(work)
    agents: list[Agent] = []
    ecs = server.client()
    cluster = uid("bench")
    ecs.create_cluster(clusterName=cluster)
    try:
        image = registry.push_rootfs(build_rootfs(work / "rootfs"), "busybox:bench")
        agents = [Agent(server, cluster, work, n, subnet(40 + i), f"zone-{n}").start() for i, n in enumerate("xy")]
        wait_registered(ecs, cluster, agents)
        family = uid("svc")
        container = {"name": "app", "image": image, "memory": 16, "command": ["sleep", "3600"], "stopTimeout": 1}
        ecs.register_task_definition(family=family, containerDefinitions=[container])
        ecs.run_task(cluster=cluster, taskDefinition=family, count=2,
                     placementConstraints=[{"type": "distinctInstance"}])  # pulls the image on both agents
        time.sleep(3)
        creates, rolls = [], []
        for run in range(RUNS):
            name = f"web{run}"
            began = time.perf_counter()
            ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=family, desiredCount=TASKS)
            steady(ecs, cluster, name)
            creates.append(time.perf_counter() - began)
            began = time.perf_counter()
            primary = ecs.update_service(cluster=cluster, service=name, forceNewDeployment=True)
            steady(ecs, cluster, name, primary["service"]["deployments"][0]["id"])
            rolls.append(time.perf_counter() - began)
            ecs.delete_service(cluster=cluster, service=name, force=True)
            ecs.get_waiter("services_inactive").wait(cluster=cluster, services=[name],
                                                     WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        print(f"real containers: {TASKS}-task service on 2 agents, median of {RUNS}")
        print(f"create to steady state:          {statistics.median(creates):8.2f} s")
        print(f"rolling deployment (forced):     {statistics.median(rolls):8.2f} s")
    finally:
        for t in ecs.list_tasks(cluster=cluster)["taskArns"]:
            ecs.stop_task(cluster=cluster, task=t)
        time.sleep(2)
        for a in agents:
            a.stop()
        registry.stop()
        server.kill()


if __name__ == "__main__":
    main()
