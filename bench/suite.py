#!/usr/bin/env python3
"""presenced benchmark suite (bench/README.md describes the workloads).

Starts every server itself (pinned to core 0) on free ports, drives it with presenced-bench
(pinned to core 1), and writes results.json (everything, raw runs included) and summary.md.

  python3 bench/suite.py                  # all workloads, 3 runs per point (< 15 min)
  python3 bench/suite.py --quick --only W2
  make bench BENCH_ARGS="--only W1,W2 --runs 5"

Python 3.11 standard library only.
"""
from __future__ import annotations

import argparse
import atexit
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REL = ROOT / "build" / "release"
PRESENCED = REL / "src" / "server" / "presenced"
GEN = REL / "bench" / "presenced-bench"
ENGINE_BENCH = REL / "bench" / "engine_bench"
STORAGE_BENCH = REL / "bench" / "storage_bench"
NODE_PEER = ROOT / "bench" / "peers" / "node-ws-presence"
YWS_PEER = ROOT / "bench" / "peers" / "y-websocket"

SERVER_CPU = "0"  # servers
GEN_CPU = "1"  # the load generator (and redis-benchmark)
P99_LIMIT_MS = 50.0  # W2: a rate point is "within budget" below this median p99
# W2: deliveries lost (beyond this many updates' worth) mark a rate point as failed. The generator
# counts an update as sent in the measured window by the same timestamp its deliveries are judged
# by, so nothing is lost on a healthy run.
LOST_TOLERANCE_UPDATES = 0
JIT_PEERS = {"node", "yws"}  # get one unrecorded priming run before their sweep
# Rough seconds per workload at --runs 3 (scaled by runs/3), for the time budget: the W2 sweeps
# start no new rate step that would push the suite past --budget-min.
EST_S = {"W1": 65, "W2": 450, "W3": 290, "W4": 30, "W5": 45, "W6": 12}
EST_W2_AFTER = {"main": 185, "c10k": 110, "ch100": 30}  # rest of W2 after each sweep
ALL_WORKLOADS = ["W1", "W2", "W3", "W4", "W5", "W6"]
TARGET_NAMES = {
    "presenced": "presenced",
    "floor": "floor (epoll relay)",
    "node": "Node ws (peer)",
    "yws": "y-websocket (peer)",
    "redis": "Redis (ZSET+HASH)",
}


def log(msg: str = "") -> None:
    print(msg, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return -1


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (-1 if gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return -1.0


def wait_idle(servers: list, timeout: float = 15.0) -> float:
    """Waits until the previous run's connections are closed on every server sharing the server
    core and none of them is still working off a backlog (< 10 % of a core over 0.2 s), so one
    run does not measure the tail of another. Returns the seconds waited."""
    t0 = time.monotonic()
    for s in servers:
        s.wait_quiet(max(timeout - (time.monotonic() - t0), 0.1))
    live = [s for s in servers if s.alive()]
    while time.monotonic() - t0 < timeout and live:
        before = sum(max(cpu_seconds(s.pid), 0) for s in live)
        time.sleep(0.2)
        if sum(max(cpu_seconds(s.pid), 0) for s in live) - before < 0.02:
            break
    return time.monotonic() - t0


def pinned(cpu: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *argv] if shutil.which("taskset") else argv


# ----- Processes ---------------------------------------------------------------------------------

class Server:
    """One server process; output goes to a log file that is polled for the ready line."""

    live: list["Server"] = []

    def __init__(self, name: str, argv: list[str], ready: str, log_dir: Path,
                 env: dict | None = None, cwd: Path | None = None, data_dir: str | None = None):
        self.name, self.argv, self.ready = name, argv, re.compile(ready)
        self.data_dir = data_dir
        self.port = 0
        self.pid = 0
        self.baseline_fds = 0
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}-{int(time.time() * 1000) % 10_000_000}.log"
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=cwd,
                                     env={**os.environ, **(env or {})}, start_new_session=True)
        self.pid = self.proc.pid
        Server.live.append(self)

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            if self.ready.search(text):
                time.sleep(0.1)
                self.baseline_fds = fd_count(self.pid)
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}) before ready; "
                                   f"log {self.log_path}:\n{text[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s; log {self.log_path}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_quiet(self, timeout: float = 10.0) -> None:
        """Waits until the connections of the previous run are closed on the server side."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            n = fd_count(self.pid)
            if n < 0 or n <= self.baseline_fds + 8:
                return
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.terminate()
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    self.proc.kill()
                self.proc.wait(timeout=5)
            except ProcessLookupError:
                pass
        self.logf.close()
        if self in Server.live:
            Server.live.remove(self)
        if self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def stop_all() -> None:
    for s in list(Server.live):
        try:
            s.stop()
        except Exception as e:  # noqa: BLE001 - cleanup must go on
            print(f"warning: stopping {s.name} (pid {s.pid}): {e}", file=sys.stderr)


atexit.register(stop_all)


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)


class Suite:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.out = Path(args.out)
        self.logs = self.out / "logs"
        self.runs = 1 if args.quick else args.runs
        self.run_counter = 0
        self.results: dict = {
            "meta": {},
            "workloads": {},
        }
        self.timings: dict[str, float] = {}
        self.t_start = time.monotonic()
        self.later: list[str] = []  # workloads still to run after the current one

    # ----- servers -----

    def start(self, target: str, tag: str) -> Server:
        port = free_port()
        name = f"{target}-{tag}"
        if target == "presenced":
            data = tempfile.mkdtemp(prefix="presenced-bench-")
            # Default settings: pinned to one core, the server starts one I/O thread itself.
            argv = [str(PRESENCED), "--listen", f"127.0.0.1:{port}", "--data-dir", data]
            if self.args.storage == "memory":
                argv += ["--storage", "memory"]
            s = Server(name, pinned(SERVER_CPU, argv), r"presenced listening on", self.logs,
                       data_dir=data)
        elif target == "floor":
            s = Server(name, pinned(SERVER_CPU, [str(GEN), "--serve-floor", str(port)]),
                       r"floor listening on", self.logs)
        elif target == "node":
            s = Server(name, pinned(SERVER_CPU, ["node", "server.js"]),
                       r"node-ws-presence listening on", self.logs, cwd=NODE_PEER,
                       env={"PORT": str(port), "HOST": "127.0.0.1"})
        elif target == "yws":
            argv = ["node", "node_modules/y-websocket/bin/server.cjs"]
            s = Server(name, pinned(SERVER_CPU, argv), r"running at", self.logs, cwd=YWS_PEER,
                       env={"PORT": str(port), "HOST": "127.0.0.1"})
        elif target == "redis":
            s = Server(name, pinned(SERVER_CPU, ["redis-server", "--port", str(port), "--bind",
                                                 "127.0.0.1", "--save", "", "--appendonly", "no"]),
                       r"[Rr]eady to accept connections", self.logs)
        else:
            raise ValueError(target)
        s.port = port
        s.target = target
        try:
            s.wait_ready()
        except Exception:
            s.stop()
            raise
        if target == "presenced":
            s.secret = Path(s.data_dir, "jwt-secret").read_text().strip()
        return s

    # ----- generator -----

    def gen(self, server: Server, mode: str, label: str, limit: float,
            quiet: list | None = None, **kw) -> dict:
        """One presenced-bench run. Never raises: a crash or timeout is a failed run. Waits
        first until `quiet` (default: the server) is idle."""
        self.run_counter += 1
        prefix = f"r{self.run_counter}"
        jpath = self.out / "runs" / f"{self.run_counter:04d}-{label}.json"
        jpath.parent.mkdir(parents=True, exist_ok=True)
        jpath.unlink(missing_ok=True)
        argv = [str(GEN), "--mode", mode, "--target", server.target, "--port", str(server.port)]
        if server.target == "presenced":
            argv += ["--secret", server.secret]
        for k, v in kw.items():
            if v is True:  # a flag (e.g. batch=True: --batch)
                argv.append(f"--{k.replace('_', '-')}")
            else:
                argv += [f"--{k.replace('_', '-')}", str(v)]
        argv += ["--prefix", prefix, "--label", label, "--json", str(jpath)]
        rec = {"label": label, "mode": mode, "target": server.target, "prefix": prefix,
               "params": kw, "ok": False, "error": None, "result": None}
        shown = [a if not (i and argv[i - 1] == "--secret") else "<secret>"
                 for i, a in enumerate(argv)]
        rec["command"] = " ".join(shlex.quote(a) for a in pinned(GEN_CPU, shown))
        rec["waitedForIdleS"] = round(wait_idle(quiet or [server]), 2)
        t0 = time.monotonic()
        try:
            p = subprocess.run(pinned(GEN_CPU, argv), capture_output=True, text=True,
                               timeout=limit, cwd=ROOT)
            rec["exitCode"] = p.returncode
            rec["stdout"] = p.stdout[-2000:]
            rec["stderrTail"] = p.stderr[-2000:]
            result = None
            if jpath.exists():
                try:
                    result = json.loads(jpath.read_text())
                except json.JSONDecodeError:
                    result = None
            if result is None:  # fall back to the k=v summary line
                for line in reversed(p.stdout.splitlines()):
                    if "=" in line:
                        result = {}
                        for kv in line.split():
                            k, _, v = kv.partition("=")
                            try:
                                result[k] = float(v)
                            except ValueError:
                                result[k] = v
                        break
            if p.returncode != 0:
                rec["error"] = f"exit code {p.returncode}: {p.stderr.strip()[-300:]}"
            elif result is None:
                rec["error"] = "no result line"
            else:
                rec["ok"] = True
            rec["result"] = result
        except subprocess.TimeoutExpired:
            rec["error"] = f"timed out after {limit:.0f} s"
        except OSError as e:
            rec["error"] = f"could not run: {e}"
        rec["elapsedS"] = round(time.monotonic() - t0, 2)
        if not server.alive():
            rec["ok"] = False
            rec["error"] = (rec["error"] or "") + f" server exited ({server.proc.returncode})"
        rec["serverAlive"] = server.alive()
        status = "ok" if rec["ok"] else f"FAILED ({rec['error']})"
        line = rec["stdout"].strip().splitlines()[-1] if rec.get("stdout", "").strip() else ""
        log(f"    [{rec['elapsedS']:5.1f} s] {label}: {status} {line}")
        return rec

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.results["meta"]["elapsedS"] = self.timings
        (self.out / "results.json").write_text(json.dumps(self.results, indent=1))

    # ----- W5 -----

    def w5(self) -> dict:
        res: dict = {"benchmarks": {}}
        for name, argv in [
            ("engine_bench", pinned(SERVER_CPU, [str(ENGINE_BENCH), "--benchmark_min_time=0.3",
                                                 "--benchmark_format=json"])),
            ("storage_bench", [str(STORAGE_BENCH), "--benchmark_format=json"]),
        ]:
            log(f"  {name}")
            entry: dict = {"command": " ".join(argv), "ok": False}
            try:
                p = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
                entry["exitCode"] = p.returncode
                entry["stderrTail"] = p.stderr[-2000:]
                data = json.loads(p.stdout)
                entry["json"] = data
                entry["ok"] = p.returncode == 0
                for b in data.get("benchmarks", []):
                    log(f"    {b['name']}: " + ", ".join(
                        f"{k}={fmt_num(b[k])}" for k in ("items_per_second", "real_time")
                        if k in b))
            except subprocess.TimeoutExpired:
                entry["error"] = "timed out after 300 s"
            except (OSError, json.JSONDecodeError) as e:
                entry["error"] = str(e)
            res["benchmarks"][name] = entry
        return res

    # ----- W1 -----

    def w1(self) -> dict:
        res: dict = {"conns": 10000, "channelSize": 10, "targets": {}}
        targets = ["presenced", "node", "yws", "floor"]
        for r in range(self.runs):
            for t in rotate(targets, r):
                runs = res["targets"].setdefault(t, {"runs": []})["runs"]
                try:
                    s = self.start(t, f"w1r{r}")
                except Exception as e:  # noqa: BLE001
                    runs.append({"ok": False, "error": f"server start: {e}"})
                    log(f"    {t}: server failed to start: {e}")
                    continue
                try:
                    runs.append(self.gen(s, "idle", f"w1-{t}", 120, conns=10000, channel_size=10,
                                         hold=1, timeout=60, server_pid=s.pid))
                finally:
                    s.stop()
        res["targets"]["redis"] = self.w1_redis()
        return res

    def w1_redis(self) -> dict:
        out: dict = {"runs": [], "members": 10000, "sets": 1000,
                     "pattern": "ZADD pres:ch<k> <expiry-ms> user-NNNNNNN + HSET presdata:ch<k> "
                                "user-NNNNNNN <~32 B JSON> (Centrifugo's ZSET + HASH)"}
        if not ensure_redis():
            out["error"] = "redis-server not available"
            return out
        for r in range(self.runs):
            rec: dict = {"ok": False}
            try:
                s = self.start("redis", f"w1r{r}")
            except Exception as e:  # noqa: BLE001
                rec["error"] = f"server start: {e}"
                out["runs"].append(rec)
                continue
            try:
                c = Resp(s.port)
                c.call("PING")
                time.sleep(0.2)
                before = rss_bytes(s.pid)
                used_before = int(c.info("memory")["used_memory"])
                expiry = int(time.time() * 1000) + 30000
                cmds = []
                for k in range(1000):
                    z = ["ZADD", f"pres:ch{k}"]
                    h = ["HSET", f"presdata:ch{k}"]
                    for i in range(k * 10, k * 10 + 10):
                        m = f"user-{i:07d}"
                        z += [str(expiry), m]
                        h += [m, f'{{"name":"user-{i:07d}","score":1}}']
                    cmds += [z, h]
                c.pipeline(cmds)
                time.sleep(0.5)
                after = rss_bytes(s.pid)
                used_after = int(c.info("memory")["used_memory"])
                c.close()
                rec = {"ok": True, "result": {
                    "rssBeforeBytes": before, "rssAfterBytes": after,
                    "bytesPerMember": (after - before) / 10000,
                    "usedMemoryBefore": used_before, "usedMemoryAfter": used_after,
                    "usedMemoryBytesPerMember": (used_after - used_before) / 10000}}
                log(f"    [redis] bytesPerMember(RSS)={rec['result']['bytesPerMember']:.0f} "
                    f"used_memory/member={rec['result']['usedMemoryBytesPerMember']:.0f}")
            except Exception as e:  # noqa: BLE001
                rec = {"ok": False, "error": str(e)}
                log(f"    [redis] FAILED: {e}")
            finally:
                s.stop()
            out["runs"].append(rec)
        return out

    # ----- W2 -----

    def sweep(self, tag: str, plan: dict[str, list[int]], conns: int, csize: int,
              duration: float, warmup: float) -> dict:
        """Rate sweep: at each step every active target runs its next rate N times, targets
        interleaved (rotated per round). A target stops after a saturated point."""
        res: dict = {"conns": conns, "channelSize": csize, "durationS": duration,
                     "warmupS": warmup, "plan": plan, "targets": {}}
        servers: dict[str, Server] = {}
        try:
            for t in plan:
                try:
                    servers[t] = self.start(t, tag)
                    res["targets"][t] = {"points": [], "stopped": None}
                except Exception as e:  # noqa: BLE001
                    res["targets"][t] = {"points": [], "stopped": f"server start failed: {e}"}
                    log(f"    {t}: server failed to start: {e}")
            for t in [t for t in plan if t in servers and t in JIT_PEERS and plan[t]]:
                res["targets"][t]["primer"] = self.gen(
                    servers[t], "churn", f"w2{tag}-{t}-primer", 60,
                    quiet=list(servers.values()), conns=conns,
                    channel_size=csize, rate=plan[t][0], duration=1, warmup=0.5, timeout=30)
            step = 0
            while True:
                active = [t for t in plan if t in servers and step < len(plan[t])
                          and res["targets"][t]["stopped"] is None]
                if not active:
                    break
                per_run = warmup + duration + (5 if conns > 5000 else 3.5)
                if step > 0 and self.over_budget(tag, len(active) * self.runs * per_run):
                    why = (f"time budget (--budget-min {self.args.budget_min:g}): rates from "
                           f"step {step + 1} on not run")
                    log(f"  {why}")
                    for t in active:
                        res["targets"][t]["stopped"] = why
                        res["targets"][t]["budgetCut"] = True
                    break
                runs: dict[str, list] = {t: [] for t in active}
                for r in range(self.runs):
                    for t in rotate(active, r + step):
                        if not servers[t].alive():
                            runs[t].append({"ok": False, "error": "server not running"})
                            continue
                        rate = plan[t][step]
                        # Setup of 10,000 connections takes a few seconds; 2 s drain after.
                        budget = warmup + duration + 2 + 60
                        runs[t].append(self.gen(
                            servers[t], "churn", f"w2{tag}-{t}-{rate}", budget,
                            quiet=list(servers.values()), conns=conns,
                            channel_size=csize, rate=rate, duration=duration, warmup=warmup,
                            timeout=30))
                for t in active:
                    point = churn_point(plan[t][step], csize, runs[t])
                    res["targets"][t]["points"].append(point)
                    log(f"  {t} {plan[t][step]} upd/s: {point['verdict']} "
                        f"(median p99 {fmt_num(point.get('p99Ms', {}).get('median'))} ms, "
                        f"lost {fmt_num(point.get('lost', {}).get('median'))})")
                    if point["saturated"]:
                        res["targets"][t]["stopped"] = (f"at {plan[t][step]:,} upd/s: "
                                                        f"{point['verdict']}")
                    elif not servers[t].alive():
                        res["targets"][t]["stopped"] = "server exited"
                step += 1
        finally:
            for s in servers.values():
                s.stop()
        for t, tr in res["targets"].items():
            tr["knee"] = knee(tr["points"])
            if tr["stopped"] is None and tr["points"]:
                tr["stopped"] = "not saturated within the sweep (knee is a lower bound)"
            if tr["knee"] and (tr.get("budgetCut")
                                or (tr["stopped"] or "").startswith("not saturated")):
                tr["knee"]["lowerBound"] = True
        return res

    def over_budget(self, tag: str, step_s: float) -> bool:
        """True when a W2 step of about step_s seconds would push the suite past its budget,
        counting rough estimates of what is still to run after it."""
        if self.args.budget_min <= 0:
            return False
        scale = self.runs / 3
        rest = EST_W2_AFTER.get(tag, 0) * scale + sum(
            EST_S[w] * (1 if w == "W5" else scale) for w in self.later)
        return time.monotonic() - self.t_start + step_s + rest > self.args.budget_min * 60

    def w2(self) -> dict:
        q = self.args.quick
        dur, warm = (2.0, 0.5) if q else (3.0, 1.0)
        if q:
            plan = {"presenced": [10000, 40000], "floor": [20000, 60000],
                    "node": [3000, 7000], "yws": [3000, 7000]}
        else:
            plan = {"presenced": [10000, 20000, 30000, 40000, 50000, 60000],
                    "floor": [20000, 40000, 60000, 80000],
                    "node": [3000, 5000, 7000, 9000], "yws": [3000, 5000, 7000, 9000]}
        res: dict = {}
        log("  main sweep: 1,000 conns, channels of 10")
        res["main"] = self.sweep("main", plan, 1000, 10, dur, warm)
        log("  10,000 conns, channels of 10")
        rates = [20000] if q else [20000, 40000]
        res["conns10k"] = self.sweep("c10k", {"presenced": rates, "floor": rates}, 10000, 10,
                                     dur, warm)
        log("  1,000 conns, channels of 100")
        rates = [2000] if q else [2000, 4000]
        res["channel100"] = self.sweep("ch100", {"presenced": rates, "floor": rates}, 1000, 100,
                                       dur, warm)
        log("  Redis (polled pattern, no push)")
        res["redis"] = self.w2_redis()
        return res

    def w2_redis(self) -> dict:
        out: dict = {"note": "Redis has no push: this is the polled pattern (writers ZADD, "
                             "readers poll ZRANGEBYSCORE), not fan-out.", "runs": []}
        if not ensure_redis() or not shutil.which("redis-benchmark"):
            out["error"] = "redis-server/redis-benchmark not available"
            return out
        n = 50000 if self.args.quick else 200000
        try:
            s = self.start("redis", "w2")
        except Exception as e:  # noqa: BLE001
            out["error"] = f"server start: {e}"
            return out
        try:
            c = Resp(s.port)
            expiry = int(time.time() * 1000) + 3_600_000
            c.call("ZADD", "pres:read", *[x for i in range(10)
                                          for x in (str(expiry), f"user-{i:07d}")])
            c.close()
            now_ms = int(time.time() * 1000)
            cmds = {
                "zadd": ["ZADD", "pres:ch__rand_int__", str(now_ms + 30000), "u:__rand_int__"],
                "zrangebyscore": ["ZRANGEBYSCORE", "pres:read", str(now_ms), "+inf"],
            }
            out["commands"] = {}
            for r in range(self.runs):
                rec: dict = {}
                for key, cmd in cmds.items():
                    argv = ["redis-benchmark", "-p", str(s.port), "-q", "-c", "50", "-n", str(n)]
                    if key == "zadd":
                        argv += ["-r", "100000"]
                    argv += cmd
                    out["commands"][key] = " ".join(shlex.quote(a) for a in pinned(GEN_CPU, argv))
                    try:
                        p = subprocess.run(pinned(GEN_CPU, argv), capture_output=True, text=True,
                                           timeout=120)
                        m = re.findall(r"([\d.]+) requests per second", p.stdout)
                        rec[key] = float(m[-1]) if m else None
                        if not m:
                            rec[key + "Error"] = (p.stdout + p.stderr)[-300:]
                    except subprocess.TimeoutExpired:
                        rec[key] = None
                        rec[key + "Error"] = "timed out"
                rec["ok"] = rec.get("zadd") is not None and rec.get("zrangebyscore") is not None
                if rec.get("zrangebyscore") is not None:
                    rec["membersReadPerSecond"] = rec["zrangebyscore"] * 10
                log(f"    [redis] ZADD {fmt_num(rec.get('zadd'))} ops/s, ZRANGEBYSCORE "
                    f"{fmt_num(rec.get('zrangebyscore'))} ops/s")
                out["runs"].append(rec)
        except Exception as e:  # noqa: BLE001
            out["error"] = str(e)
        finally:
            s.stop()
        return out

    # ----- W3, W4, W6 -----

    def per_target(self, tag: str, mode: str, targets: list[str], runs: int, limit: float,
                   stop_if=None, **kw) -> dict:
        """N runs per target, targets interleaved. stop_if(run) ends a target's runs early
        (e.g. a storm that did not complete before its timeout: repeating it only costs time)."""
        res: dict = {"params": kw, "targets": {}}
        servers: dict[str, Server] = {}
        try:
            for t in targets:
                res["targets"][t] = {"runs": []}
                try:
                    servers[t] = self.start(t, tag)
                except Exception as e:  # noqa: BLE001
                    res["targets"][t]["error"] = f"server start failed: {e}"
                    log(f"    {t}: server failed to start: {e}")
            for r in range(runs):
                for t in rotate([t for t in targets if t in servers], r):
                    tr = res["targets"][t]
                    if tr.get("stopped"):
                        continue
                    if not servers[t].alive():
                        tr["runs"].append({"ok": False, "error": "server not running"})
                        continue
                    run = self.gen(servers[t], mode, f"{tag}-{t}", limit,
                                   quiet=list(servers.values()), **kw)
                    tr["runs"].append(run)
                    if stop_if and r + 1 < runs and stop_if(run):
                        tr["stopped"] = (f"{runs - r - 1} further run(s) skipped: run {r + 1} "
                                         "did not complete before the timeout")
                        log(f"    {t}: {tr['stopped']}")
        finally:
            for s in servers.values():
                s.stop()
        return res

    def w3(self) -> dict:
        def incomplete(run: dict) -> bool:
            r = run.get("result") or {}
            return not run.get("ok") or r.get("consistentMs", -1) < 0

        res = {"m2000": self.per_target("w3m2000", "storm", ["presenced", "node", "yws"],
                                        self.runs, 120, stop_if=incomplete, conns=2000,
                                        timeout=60)}
        if not self.args.quick:
            res["m10000"] = self.per_target("w3m10000", "storm", ["presenced"], 1, 150,
                                            conns=10000, timeout=60)
            # The same storm with batch=1 (protocol-ext section 1), the 10k target.
            res["m10000batch"] = self.per_target("w3m10000b", "storm", ["presenced"], 1, 150,
                                                 conns=10000, timeout=60, batch=True)
        return res

    def w4(self) -> dict:
        return self.per_target("w4", "devices", ["presenced"], self.runs, 120, conns=9000,
                               devices=3, grace_ms=2000, timeout=60)

    def w6(self) -> dict:
        return self.per_target("w6", "connect", ["presenced"], self.runs, 120, conns=10000,
                               timeout=60)

    # ----- driver -----

    def run(self, only: list[str]) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.results["meta"] = meta(self.args, self.runs)
        self.save()
        t_all = self.t_start = time.monotonic()
        for i, w in enumerate(ALL_WORKLOADS):
            if w not in only:
                continue
            self.later = [x for x in ALL_WORKLOADS[i + 1:] if x in only]
            log(f"== {w}: {WORKLOAD_TITLES[w]}")
            t0 = time.monotonic()
            try:
                self.results["workloads"][w] = getattr(self, w.lower())()
            except Exception as e:  # noqa: BLE001 - one workload failing must not end the suite
                self.results["workloads"][w] = {"error": f"{type(e).__name__}: {e}"}
                log(f"  {w} FAILED: {e}")
            finally:
                stop_all()
            self.timings[w] = round(time.monotonic() - t0, 1)
            log(f"== {w} done in {self.timings[w]:.0f} s")
            self.save()
        self.timings["total"] = round(time.monotonic() - t_all, 1)
        self.save()
        md = summary_md(self.results, self.timings)
        (self.out / "summary.md").write_text(md)
        log()
        log(md)
        log(f"Wrote {self.out / 'results.json'} and {self.out / 'summary.md'}")


WORKLOAD_TITLES = {
    "W1": "idle memory per connection",
    "W2": "update fan-out (churn) rate sweep",
    "W3": "join storm",
    "W4": "multi-device drops and grace",
    "W5": "engine and storage microbenchmarks",
    "W6": "connect rate",
}


# ----- Redis ------------------------------------------------------------------------------------

def ensure_redis() -> bool:
    if shutil.which("redis-server") and shutil.which("redis-benchmark"):
        return True
    log("  redis-server not found: apt-get install -y redis-server")
    try:
        subprocess.run(["apt-get", "install", "-y", "redis-server"], check=False, timeout=600,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    except (OSError, subprocess.TimeoutExpired) as e:
        log(f"  apt-get failed: {e}")
    return bool(shutil.which("redis-server"))


class Resp:
    """A minimal RESP client (enough for ZADD/HSET pipelines and INFO)."""

    def __init__(self, port: int):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""

    @staticmethod
    def encode(args) -> bytes:
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a.encode() if isinstance(a, str) else a
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        return b"".join(out)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b":"):
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.s.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode()
        if kind == b"*":
            return [self._read() for _ in range(int(rest))]
        raise RuntimeError(f"bad reply {line!r}")

    def call(self, *args):
        self.s.sendall(self.encode(args))
        return self._read()

    def pipeline(self, cmds):
        self.s.sendall(b"".join(self.encode(c) for c in cmds))
        return [self._read() for _ in cmds]

    def info(self, section: str) -> dict:
        text = self.call("INFO", section)
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def close(self):
        self.s.close()


# ----- Statistics and formatting -----------------------------------------------------------------

def rotate(items: list, k: int) -> list:
    if not items:
        return items
    k %= len(items)
    return items[k:] + items[:k]


def stat(values) -> dict | None:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def field_stats(runs: list, fields) -> dict:
    ok = [r["result"] for r in runs if r.get("ok") and r.get("result")]
    return {f: stat([r.get(f) for r in ok]) for f in fields}


CHURN_FIELDS = ["deliveriesPerSecond", "p50Ms", "p99Ms", "p999Ms", "maxMs", "lost", "duplicated",
                "failed"]


def churn_point(rate: int, csize: int, runs: list) -> dict:
    p = {"rate": rate, "offeredDeliveriesPerSecond": rate * csize, "runs": runs,
         "okRuns": sum(1 for r in runs if r.get("ok"))}
    p.update(field_stats(runs, CHURN_FIELDS))
    if p["okRuns"] == 0:
        p["saturated"], p["verdict"] = True, "all runs failed"
    elif p["p99Ms"]["median"] >= P99_LIMIT_MS:
        p["saturated"], p["verdict"] = True, f"saturated (median p99 >= {P99_LIMIT_MS:.0f} ms)"
    elif p["lost"]["median"] > LOST_TOLERANCE_UPDATES * csize:
        p["saturated"] = True
        p["verdict"] = f"saturated (median lost {p['lost']['median']:.0f} > one update)"
    else:
        p["saturated"], p["verdict"] = False, "ok"
    return p


def knee(points: list) -> dict | None:
    good = [p for p in points if not p["saturated"]]
    if not good:
        return None
    best = max(good, key=lambda p: p["deliveriesPerSecond"]["median"])
    return {"rate": best["rate"], "deliveriesPerSecond": best["deliveriesPerSecond"],
            "p99Ms": best["p99Ms"], "lowerBound": False}


def fmt_num(v, digits: int = 3, exact: bool = False) -> str:
    if v is None:
        return "—"
    v = float(v)
    if v != v:
        return "—"
    a = abs(v)
    if exact and a >= 1e3:
        return f"{v:,.0f}"
    if a >= 1e6:
        return f"{v / 1e6:.2f} M"
    if a >= 1e4:
        return f"{v / 1e3:.0f} k"
    if a >= 1e3:
        return f"{v:,.0f}"
    if a >= 100 or v == int(v):
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.{max(digits - 1, 1)}f}".rstrip("0").rstrip(".") if a else "0"


def fmt_stat(s: dict | None, unit: str = "", digits: int = 3, exact: bool = False) -> str:
    if not s:
        return "—"
    u = f" {unit}" if unit else ""
    f = lambda v: fmt_num(v, digits, exact)  # noqa: E731
    if s["n"] == 1 or s["min"] == s["max"]:
        return f"{f(s['median'])}{u}"
    return f"{f(s['median'])}{u} ({f(s['min'])}–{f(s['max'])})"


def ok_count(runs: list) -> str:
    return f"{sum(1 for r in runs if r.get('ok'))}/{len(runs)}"


def failures(runs: list) -> list[str]:
    return [r.get("error") or "?" for r in runs if not r.get("ok")]


# ----- Metadata and summary ---------------------------------------------------------------------

def meta(args, runs: int) -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, IndexError, ValueError):
        pass
    git = {}
    try:
        git["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, text=True,
                                       capture_output=True).stdout.strip()
        git["dirty"] = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                           cwd=ROOT, text=True, capture_output=True).stdout.strip())
    except OSError:
        pass
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "cwd": os.getcwd(),
        "runsPerPoint": runs,
        "quick": args.quick,
        "presencedStorage": args.storage,
        "budgetMin": args.budget_min,
        "machine": {"nproc": os.cpu_count(), "cpuModel": cpu, "kernel": platform.release(),
                    "memory": mem, "python": platform.python_version()},
        "git": git,
        "pinning": f"servers taskset -c {SERVER_CPU}, generator taskset -c {GEN_CPU}",
        "p99LimitMs": P99_LIMIT_MS,
    }


def summary_md(res: dict, timings: dict) -> str:
    m = res["meta"]
    mach = m["machine"]
    w = res["workloads"]
    L: list[str] = []
    add = L.append
    add("# presenced benchmark suite")
    add("")
    add(f"- Date: {m['date']}")
    add(f"- Command: `{m['command']}` (in `{m['cwd']}`)")
    add(f"- Machine: {mach['nproc']} CPUs, {mach['cpuModel']}, kernel {mach['kernel']}, "
        f"{mach['memory']}")
    g = m.get("git", {})
    if g:
        dirty = " (uncommitted changes)" if g.get("dirty") else ""
        add(f"- Commit: {g.get('commit', '?')[:12]}{dirty}")
    add(f"- {m['pinning']}; {m['runsPerPoint']} run(s) per point; figures are "
        "median (min–max) over runs. presenced storage: " + m["presencedStorage"] + ".")
    if m.get("quick"):
        add("- **--quick**: smoke test (1 run, fewer rates, shorter runs); not for reporting.")
    add("")

    if "W5" in w:
        add("## W5: engine and storage microbenchmarks (Google Benchmark)")
        add("")
        d = w["W5"]
        if "error" in d:
            add(f"Failed: {d['error']}")
        else:
            add("| Binary | Benchmark | items/s | time per iteration | counters |")
            add("|---|---|---|---|---|")
            for binary, e in d["benchmarks"].items():
                if not e.get("json"):
                    add(f"| {binary} | FAILED: {e.get('error', '')} | | | |")
                    continue
                for b in e["json"].get("benchmarks", []):
                    std = {"name", "family_index", "per_family_instance_index", "run_name",
                           "run_type", "repetitions", "repetition_index", "threads",
                           "iterations", "real_time", "cpu_time", "time_unit",
                           "items_per_second", "bytes_per_second", "aggregate_name",
                           "aggregate_unit", "label", "error_occurred", "error_message"}
                    counters = ", ".join(f"{k}={fmt_num(v)}" for k, v in b.items()
                                         if k not in std and isinstance(v, (int, float)))
                    add(f"| {binary} | `{b['name']}` | {fmt_num(b.get('items_per_second'))} | "
                        f"{fmt_num(b.get('real_time'))} {b.get('time_unit', '')} | {counters} |")
        add("")

    if "W1" in w:
        add("## W1: idle memory (10,000 connections, channels of 10, ~32 B data each)")
        add("")
        d = w["W1"]
        if "error" in d:
            add(f"Failed: {d['error']}")
        else:
            add("Server RSS growth (VmRSS) per connection, fresh server per run.")
            add("")
            add("| Target | bytes/conn | RSS before | RSS after | ok runs |")
            add("|---|---|---|---|---|")
            for t in ["presenced", "node", "yws", "floor"]:
                tr = d["targets"].get(t)
                if not tr:
                    continue
                fs = field_stats(tr["runs"], ["bytesPerConn", "rssBeforeBytes", "rssAfterBytes"])
                add(f"| {TARGET_NAMES[t]} | {fmt_stat(fs['bytesPerConn'])} | "
                    f"{fmt_mib(fs['rssBeforeBytes'])} | {fmt_mib(fs['rssAfterBytes'])} | "
                    f"{ok_count(tr['runs'])} |")
            rd = d["targets"].get("redis", {})
            if rd.get("runs"):
                fs = field_stats(rd["runs"], ["bytesPerMember", "rssBeforeBytes",
                                              "rssAfterBytes", "usedMemoryBytesPerMember"])
                add(f"| {TARGET_NAMES['redis']}, per member, storage only (no connections) | "
                    f"{fmt_stat(fs['bytesPerMember'])} (used_memory: "
                    f"{fmt_stat(fs['usedMemoryBytesPerMember'])}) | "
                    f"{fmt_mib(fs['rssBeforeBytes'])} | {fmt_mib(fs['rssAfterBytes'])} | "
                    f"{ok_count(rd['runs'])} |")
            elif rd.get("error"):
                add(f"| Redis | {rd['error']} | | | |")
            fails = [f"{t}: {e}" for t, tr in d["targets"].items() for e in failures(tr["runs"])]
            if fails:
                add("")
                add("Failed runs: " + "; ".join(fails))
        add("")

    if "W2" in w:
        add("## W2: update fan-out (open-loop churn)")
        add("")
        d = w["W2"]
        if "error" in d:
            add(f"Failed: {d['error']}")
        else:
            main = d.get("main")
            if main:
                add(f"A rate point is within budget when its median p99 < {P99_LIMIT_MS:.0f} ms "
                    "and nothing is lost; a target's sweep stops at its first point outside. "
                    "Node and y-websocket get one unrecorded priming run first (JIT warm-up). "
                    f"{main['conns']:,} connections, channels of {main['channelSize']}, "
                    f"{main['durationS']:g} s measured after {main['warmupS']:g} s warm-up.")
                add("")
                add("### Knee (highest deliveries/s within budget)")
                add("")
                kn = {t: (tr.get("knee") or {}) for t, tr in main["targets"].items()}
                node_k = kn.get("node", {}).get("deliveriesPerSecond", {}) or {}
                floor_k = kn.get("floor", {}).get("deliveriesPerSecond", {}) or {}
                add("| Target | knee deliveries/s | at updates/s | p99 at knee | × Node | "
                    "of floor | sweep ended |")
                add("|---|---|---|---|---|---|---|")
                for t, tr in main["targets"].items():
                    k = kn[t]
                    if not k:
                        add(f"| {TARGET_NAMES[t]} | none within budget | | | | | "
                            f"{tr.get('stopped')} |")
                        continue
                    v = k["deliveriesPerSecond"]["median"]
                    lb = "≥ " if k.get("lowerBound") else ""
                    rn = (bound(k, kn.get("node")) + f"{v / node_k['median']:.1f}×"
                          if node_k.get("median") and t != "node" else "—")
                    rf = (bound(k, kn.get("floor")) + f"{100 * v / floor_k['median']:.0f} %"
                          if floor_k.get("median") and t != "floor" else "—")
                    add(f"| {TARGET_NAMES[t]} | {lb}{fmt_stat(k['deliveriesPerSecond'])} | "
                        f"{k['rate']:,} | {fmt_stat(k['p99Ms'], 'ms')} | {rn} | {rf} | "
                        f"{tr.get('stopped')} |")
                add("")
            for key, title in [("main", "Sweep: 1,000 connections, channels of 10"),
                               ("conns10k", "10,000 connections, channels of 10"),
                               ("channel100", "1,000 connections, channels of 100")]:
                sw = d.get(key)
                if not sw:
                    continue
                add(f"### {title}")
                add("")
                add("| Target | updates/s | offered deliveries/s | deliveries/s | p50 ms | "
                    "p99 ms | p99.9 ms | max ms | lost | dup | ok runs | verdict |")
                add("|---|---|---|---|---|---|---|---|---|---|---|---|")
                for t, tr in sw["targets"].items():
                    if not tr["points"]:
                        add(f"| {TARGET_NAMES[t]} | {tr.get('stopped')} ||||||||||")
                    for p in tr["points"]:
                        add(f"| {TARGET_NAMES[t]} | {p['rate']:,} | "
                            f"{fmt_num(p['offeredDeliveriesPerSecond'])} | "
                            f"{fmt_stat(p['deliveriesPerSecond'])} | {fmt_stat(p['p50Ms'])} | "
                            f"{fmt_stat(p['p99Ms'])} | {fmt_stat(p['p999Ms'])} | "
                            f"{fmt_stat(p['maxMs'])} | {fmt_stat(p['lost'])} | "
                            f"{fmt_stat(p['duplicated'])} | {ok_count(p['runs'])} | "
                            f"{p['verdict']} |")
                add("")
            rd = d.get("redis")
            if rd:
                add("### Redis equivalent: polled pattern, no push")
                add("")
                add("Redis has no push: writers ZADD, readers would have to poll ZRANGEBYSCORE. "
                    "These are command rates (redis-benchmark, 50 clients, no pipelining), not "
                    "deliveries to subscribers.")
                add("")
                if rd.get("error"):
                    add(f"Failed: {rd['error']}")
                else:
                    rs = rd["runs"]
                    add("| Command | ops/s | members read/s |")
                    add("|---|---|---|")
                    zadd = fmt_stat(stat(r.get("zadd") for r in rs))
                    add(f"| `ZADD` (write one member) | {zadd} | |")
                    add(f"| `ZRANGEBYSCORE` (poll a 10-member set) | "
                        f"{fmt_stat(stat(r.get('zrangebyscore') for r in rs))} | "
                        f"{fmt_stat(stat(r.get('membersReadPerSecond') for r in rs))} |")
                    for k, c in rd.get("commands", {}).items():
                        add(f"\n`{c}`")
                add("")

    if "W3" in w:
        add("## W3: join storm (all connections subscribe to and enter one channel)")
        add("")
        d = w["W3"]
        if "error" in d:
            add(f"Failed: {d['error']}")
        else:
            add("consistentMs: time until every connection's view holds every member "
                "(— if not all complete before the 60 s timeout).")
            add("")
            add("| Target | members | consistent ms | p50 complete ms | complete | view fraction | "
                "failed conns | ok runs |")
            add("|---|---|---|---|---|---|---|---|")
            for key in ("m2000", "m10000", "m10000batch"):
                sub = d.get(key)
                if not sub:
                    continue
                how = " (batch=1)" if sub["params"].get("batch") else ""
                for t, tr in sub["targets"].items():
                    if tr.get("error"):
                        add(f"| {TARGET_NAMES[t]} | {sub['params']['conns']:,} | "
                            f"{tr['error']} ||||||")
                        continue
                    ok = [r for r in tr["runs"] if r.get("ok") and r.get("result")]
                    cons = stat(r["result"]["consistentMs"] for r in ok
                                if r["result"].get("consistentMs", -1) >= 0)
                    incomplete = sum(1 for r in ok if r["result"].get("consistentMs", -1) < 0)
                    fs = field_stats(tr["runs"], ["complete", "viewFraction", "failed"])
                    p50 = stat(r["result"]["p50CompleteMs"] for r in ok
                               if r["result"].get("p50CompleteMs", -1) >= 0)
                    c = fmt_stat(cons, exact=True)
                    if incomplete:
                        c += f" ({incomplete} run(s) incomplete at timeout)"
                    if tr.get("stopped"):
                        c += f"; {tr['stopped']}"
                    add(f"| {TARGET_NAMES[t]}{how} | {sub['params']['conns']:,} | {c} | "
                        f"{fmt_stat(p50, exact=True)} | {fmt_stat(fs['complete'], exact=True)} | "
                        f"{fmt_stat(fs['viewFraction'], digits=5)} | "
                        f"{fmt_stat(fs['failed'], exact=True)} | {ok_count(tr['runs'])} |")
        add("")

    for key, title, fields in [
        ("W4", "W4: multi-device drops (9,000 connections, 3 devices per user, grace 2,000 ms)",
         ["abruptExcessP50Ms", "abruptExcessP99Ms", "abruptExcessMaxMs", "cleanP50Ms",
          "cleanP99Ms", "cleanMaxMs", "expectedLeaves", "missingLeaves", "wrongReason",
          "unexpectedLeaves", "falseOffline", "failed"]),
        ("W6", "W6: connect rate (10,000 connections: handshake + enter)",
         ["connectsPerSecond", "seconds", "p50Ms", "p99Ms", "failed", "setupErrors"]),
    ]:
        if key not in w:
            continue
        add(f"## {title}")
        add("")
        d = w[key]
        if "error" in d:
            add(f"Failed: {d['error']}")
            add("")
            continue
        tr = d["targets"]["presenced"]
        if tr.get("error"):
            add(f"Failed: {tr['error']}")
            add("")
            continue
        if key == "W4":
            add("abruptExcess: leave latency beyond the 2,000 ms grace after an abrupt drop; "
                "clean: leave latency after a clean close.")
            add("")
        fs = field_stats(tr["runs"], fields)
        add("| Metric | presenced |")
        add("|---|---|")
        for f in fields:
            add(f"| {f} | {fmt_stat(fs[f], exact=True)} |")
        add(f"| ok runs | {ok_count(tr['runs'])} |")
        fails = failures(tr["runs"])
        if fails:
            add("")
            add("Failed runs: " + "; ".join(fails))
        add("")

    add("## Elapsed")
    add("")
    add("| Workload | seconds |")
    add("|---|---|")
    for k, v in timings.items():
        add(f"| {k} | {v:.0f} |")
    add("")
    return "\n".join(L)


def bound(mine: dict, other: dict | None) -> str:
    """Prefix of a knee ratio when one knee or the other is only a lower bound."""
    a, b = bool(mine.get("lowerBound")), bool((other or {}).get("lowerBound"))
    return "" if a == b and not a else "≥ " if a and not b else "≤ " if b and not a else "~ "


def fmt_mib(s: dict | None) -> str:
    if not s:
        return "—"
    f = lambda v: f"{v / 1048576:.1f}"  # noqa: E731
    if s["n"] == 1 or s["min"] == s["max"]:
        return f"{f(s['median'])} MiB"
    return f"{f(s['median'])} MiB ({f(s['min'])}–{f(s['max'])})"


# ----- Setup -------------------------------------------------------------------------------------

def check_setup(only: list[str]) -> None:
    need = [PRESENCED, GEN] if set(only) - {"W5"} else []
    if "W5" in only:
        need += [ENGINE_BENCH, STORAGE_BENCH]
    missing = [str(p) for p in need if not p.exists()]
    if missing:
        sys.exit("missing binaries (run `make release`): " + ", ".join(missing))
    peers = []
    if {"W1", "W2", "W3"} & set(only):
        peers = [NODE_PEER, YWS_PEER]
    for d in peers:
        if not (d / "node_modules").is_dir():
            if not shutil.which("npm"):
                sys.exit(f"npm not found: needed to install the benchmark peer in {d}")
            log(f"installing benchmark peer: npm install in {d.relative_to(ROOT)}")
            subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=d, check=True)
    if {"W1", "W2"} & set(only):
        ensure_redis()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1 run each, fewer rates, shorter runs")
    ap.add_argument("--runs", type=int, default=3, help="runs per point (default 3)")
    ap.add_argument("--only", default=",".join(ALL_WORKLOADS),
                    help="comma-separated workloads, e.g. W1,W2 (default: all)")
    ap.add_argument("--out", default=None,
                    help="output directory (default build/bench-results/<timestamp>)")
    ap.add_argument("--budget-min", type=float, default=15.5,
                    help="W2 starts no new rate step that would, by rough estimate, make the "
                         "suite run longer than this (default 14.5; 0 = no limit)")
    ap.add_argument("--storage", choices=["sqlite", "memory"], default="sqlite",
                    help="presenced storage (default sqlite, the product default)")
    args = ap.parse_args()
    only = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    bad = [w for w in only if w not in ALL_WORKLOADS]
    if bad:
        ap.error(f"unknown workload(s) {', '.join(bad)}; choose from {', '.join(ALL_WORKLOADS)}")
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    if args.out is None:
        args.out = str(ROOT / "build" / "bench-results" /
                       dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    check_setup(only)
    suite = Suite(args)
    log(f"presenced bench suite -> {args.out} (runs per point: {suite.runs})")
    try:
        suite.run(only)
    finally:
        stop_all()


if __name__ == "__main__":
    main()
