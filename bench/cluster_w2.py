#!/usr/bin/env python3
"""W2 (fan-out under churn) over a cluster (issue #15): the same open-loop load against
  single   one presenced node, no Redis (the default deployment),
  cluster1 one node in cluster mode on a redis-server (every change through the log),
  cluster2 two nodes on one redis-server, the generator's connections alternating between them
           (`presenced-bench --ports A,B`), so every channel has members on both nodes and each
           event crosses nodes,
alternated round by round in the same minutes. Every server process (nodes and redis-server) is
pinned to core 0 and the generator to core 1, as bench/suite.py does: the server side is one core
in each configuration, so the ratios are the cost of the cluster, not of the machine. Default
settings everywhere. Per run it prints the generator's figures, the CPU time of the nodes and of
redis-server over the run, and the number of log entries (`{presenced}:logq`).

    python3 bench/cluster_w2.py [--rates 5000 10000] [--rounds 3]
        [--bin build/release/src/server/presenced] [--gen build/release/bench/presenced-bench]
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def wait_for(pred, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    raise RuntimeError("timed out")


class Redis:
    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0", "redis-server", "--port", str(self.port), "--bind",
             "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self.cli("PING") == "PONG")

    def cli(self, *args):
        p = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True,
                           text=True)
        return p.stdout.strip()

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Node:
    def __init__(self, binary, data_dir, redis=None, node_id=None):
        self.data_dir = data_dir
        argv = ["taskset", "-c", "0", binary, "--listen", "127.0.0.1:0", "--data-dir", data_dir]
        if redis:
            argv += ["--redis-url", "redis://127.0.0.1:%d" % redis.port, "--node-id", node_id]
        self.out = open(os.path.join(data_dir, "out"), "w+")
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=subprocess.DEVNULL)
        wait_for(lambda: "listening on" in open(self.out.name).read())
        line = open(self.out.name).read()
        self.port = int(line.split("127.0.0.1:")[1].split()[0])
        if redis:
            wait_for(lambda: self.healthy())

    def healthy(self):
        import http.client
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            c.request("GET", "/v1/healthz")
            return c.getresponse().status == 200
        except OSError:
            return False

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.out.close()


def run(config, rate, args, prefix):
    dirs = [tempfile.mkdtemp(prefix="presenced-cw2-") for _ in range(2)]
    redis = Redis() if config != "single" else None
    nodes = []
    try:
        nodes.append(Node(args.bin, dirs[0], redis, "a"))
        if config == "cluster2":
            for name in ("jwt-secret", "api-key"):
                shutil.copy(os.path.join(dirs[0], name), dirs[1])
            nodes.append(Node(args.bin, dirs[1], redis, "b"))
        secret = open(os.path.join(dirs[0], "jwt-secret")).read().strip()
        ports = ",".join(str(n.port) for n in nodes)
        cpu0 = [cpu_seconds(n.proc.pid) for n in nodes]
        rcpu0 = cpu_seconds(redis.proc.pid) if redis else 0
        q0 = int(redis.cli("GET", "{presenced}:logq") or 0) if redis else 0
        t0 = time.monotonic()
        p = subprocess.run(
            ["taskset", "-c", "1", args.gen, "--mode", "churn", "--target", "presenced",
             "--ports", ports, "--secret", secret, "--conns", str(args.conns), "--channel-size",
             str(args.channel_size), "--rate", str(rate), "--duration", str(args.duration),
             "--warmup", "1", "--prefix", prefix],
            capture_output=True, text=True, timeout=120)
        wall = time.monotonic() - t0
        fields = dict(kv.split("=", 1) for kv in p.stdout.strip().splitlines()[-1].split())
        fields["nodeCpuS"] = sum(cpu_seconds(n.proc.pid) for n in nodes) - sum(cpu0)
        fields["redisCpuS"] = (cpu_seconds(redis.proc.pid) - rcpu0) if redis else 0
        fields["logEntries"] = (int(redis.cli("GET", "{presenced}:logq") or 0) - q0) if redis else 0
        fields["wallS"] = wall
        return fields
    finally:
        for n in nodes:
            n.stop()
        if redis:
            redis.stop()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", type=int, nargs="+", default=[5000, 10000])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--channel-size", type=int, default=10)
    ap.add_argument("--duration", type=float, default=3)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/release/src/server/presenced"))
    ap.add_argument("--gen", default=os.path.join(ROOT, "build/release/bench/presenced-bench"))
    ap.add_argument("--configs", nargs="+", default=["single", "cluster1", "cluster2"])
    args = ap.parse_args()
    os.environ.pop("PRESENCED_IO_THREADS", None)
    results = {}
    for rate in args.rates:
        for r in range(args.rounds):
            for config in args.configs:
                f = run(config, rate, args, "r%d%s%d" % (r, config, rate))
                results.setdefault((rate, config), []).append(f)
                per_entry = (1e6 * f["redisCpuS"] / f["logEntries"]) if f["logEntries"] else 0
                print("rate=%d round=%d %-8s p50=%sms p99=%sms deliveries/s=%s lost=%s dup=%s "
                      "nodeCpu=%.2fs redisCpu=%.2fs logEntries=%d redisUsPerEntry=%.1f"
                      % (rate, r + 1, config, f.get("p50Ms"), f.get("p99Ms"),
                         f.get("deliveriesPerSecond"), f.get("lost"), f.get("duplicated"),
                         f["nodeCpuS"], f["redisCpuS"], f["logEntries"], per_entry), flush=True)
    print("\nmedians over %d rounds:" % args.rounds)
    print("| updates/s | config | p50 ms | p99 ms | deliveries/s | lost | node CPU s | "
          "redis CPU s | log entries | redis µs/entry |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (rate, config), runs in results.items():
        med = lambda k: statistics.median(float(x.get(k, 0)) for x in runs)  # noqa: E731
        entries = med("logEntries")
        print("| %d | %s | %.2f | %.2f | %.0f | %.0f | %.2f | %.2f | %.0f | %s |"
              % (rate, config, med("p50Ms"), med("p99Ms"), med("deliveriesPerSecond"),
                 med("lost"), med("nodeCpuS"), med("redisCpuS"), entries,
                 "%.1f" % (1e6 * med("redisCpuS") / entries) if entries else "—"))


if __name__ == "__main__":
    main()
