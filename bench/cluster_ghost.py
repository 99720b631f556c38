#!/usr/bin/env python3
"""Ghost time after kill -9 (issue #15): two presenced nodes on one redis-server, default settings
(node_lease_ms 3000). Each round starts node A, enters one member from it (remainPresentForMs=0),
waits until a subscriber on node B sees it, kills A with SIGKILL and measures the time until B
delivers the member's leave. Prints every round and p50/p99/max.

    python3 bench/cluster_ghost.py [--rounds 20] [--bin build/release/src/server/presenced]
"""
import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
import harness  # noqa: E402
from harness import Client, RedisServer, Server, wait_until  # noqa: E402


def healthy(server):
    try:
        return server.http("GET", "/v1/healthz", key=False)[0] == 200
    except OSError:
        return False


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--bin", default="build/release/src/server/presenced")
    args = ap.parse_args()
    harness.BINARY = args.bin
    os.environ.pop("PRESENCED_IO_THREADS", None)
    redis = RedisServer().start()
    b = Server(redis_url=redis.url, node_id="b")
    shared = tempfile.mkdtemp(prefix="presenced-ghost-")
    for name in ("jwt-secret", "api-key"):
        shutil.copy(os.path.join(b.data_dir, name), shared)
    wait_until(lambda: healthy(b))
    watcher = await Client.connect(b, "watcher")
    await watcher.ok("subscribe", channel="ghost")
    ghosts = []
    try:
        for r in range(args.rounds):
            a = Server(data_dir=shared, redis_url=redis.url, node_id="a%d" % r)
            wait_until(lambda: healthy(a))
            m = await Client.connect(a, "member%d" % r, remainPresentForMs=0)
            await m.ok("enter", channel="ghost", data=r)
            await watcher.presence("ghost", timeout=10)
            killed = time.monotonic()
            a.kill()
            e = await watcher.presence("ghost", timeout=20)
            ghost = time.monotonic() - killed
            assert e["action"] == "leave" and e["member"]["clientId"] == "member%d" % r, e
            ghosts.append(ghost)
            print("round %2d: leave after %.3f s (%s)" % (r, ghost, e["reason"]), flush=True)
    finally:
        b.kill()
        redis.stop()
    ghosts.sort()
    p = lambda q: ghosts[min(len(ghosts) - 1, int(q * len(ghosts)))]  # noqa: E731
    print("ghost time after kill -9 over %d kills: p50 %.3f s, p99 %.3f s, max %.3f s "
          "(lease 3.000 s)" % (len(ghosts), p(0.5), p(0.99), ghosts[-1]))


if __name__ == "__main__":
    asyncio.run(main())
