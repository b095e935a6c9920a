"""The scale benchmark: our job binary, raw Dask and Python dagster-dask, side by side on one
loopback cluster, shapes alternating. Run it with `bash benches/scale/run.sh [--quick]`
(which builds the job binary and the venv first); see benches/README.md.
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PAYLOAD_BYTES = 10 << 20

SMALL = ["single", "chain-20", "fan-50", "payload", "gpu", "failing"]
LARGE = ["fan-1000", "chain-1000", "fan-10000"]
GROWTH = ["fan-100", "fan-1000", "fan-10000", "chain-100", "chain-1000", "chain-10000"]
OURS = ["embedded", "dask-local", "dask-existing"]
RAW = ["trivial", "subprocess"]
PEER = ["in_process", "dask-local", "dask-existing"]


def expected(shape):
    """(sink step, value) a successful run must print, or None for the failing job."""
    kind, _, n = shape.partition("-")
    if kind == "fan" and n:
        return "sum", int(n) * (int(n) + 1) // 2
    if kind == "chain" and n:
        return f"inc_{int(n) - 1}", int(n) - 1
    return {"single": ("one", 1), "payload": ("measure", PAYLOAD_BYTES), "gpu": ("train", 2),
            "failing": None}[shape]


def steps_of(shape):
    kind, _, n = shape.partition("-")
    if kind == "fan" and n:
        return int(n) + 2
    if kind == "chain" and n:
        return int(n)
    return {"single": 1, "payload": 3, "gpu": 1, "failing": 2}[shape]


# -- the cluster ------------------------------------------------------------------------------

class Cluster:
    """`dask scheduler` and two single-thread workers on loopback, free ports; one worker
    offers GPU=1. Workers can import the peer's jobs (PYTHONPATH)."""

    def __init__(self, python, work):
        self.dir = os.path.join(work, "cluster")
        os.makedirs(self.dir)
        env = dict(os.environ, PYTHONPATH=HERE, DASK_LOGGING__DISTRIBUTED="warning")
        file = os.path.join(self.dir, "scheduler.json")
        self.procs = []

        def start(name, *args):
            log = open(os.path.join(self.dir, f"{name}.log"), "w")
            self.procs.append(subprocess.Popen([python, "-m", *args], stdout=log, stderr=log,
                                               env=env, cwd=self.dir))

        start("scheduler", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
              "0", "--dashboard-address", "127.0.0.1:0", "--scheduler-file", file)
        for _ in range(300):
            if os.path.exists(file):
                break
            time.sleep(0.1)
        with open(file) as f:
            self.address = json.load(f)["address"]
        for name, extra in (("cpu-worker", []), ("gpu-worker", ["--resources", "GPU=1"])):
            start(name, "distributed.cli.dask_worker", "--scheduler-file", file, "--name", name,
                  "--nthreads", "1", "--host", "127.0.0.1", "--dashboard-address",
                  "127.0.0.1:0", *extra)
        from distributed import Client

        self.client = Client(self.address, timeout=60)
        self.client.wait_for_workers(2, timeout=120)
        self.scheduler_pid = self.procs[0].pid

    def close(self):
        self.client.close()
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


# -- one run of each tool ---------------------------------------------------------------------

class Watch:
    """Peak memory of a run's driver and bridge (VmHWM, sampled), the scheduler's RSS peak
    while it ran, and the longest the scheduler took to answer a ping."""

    def __init__(self, cluster, pid):
        self.cluster, self.pid = cluster, pid
        self.driver = self.bridge = self.scheduler = 0
        self.slowest = 0.0
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self.sample, daemon=True),
                        threading.Thread(target=self.ping, daemon=True)]
        for t in self.threads:
            t.start()

    @staticmethod
    def kib(pid, field):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def children(self, pid):
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                return [int(c) for c in f.read().split()]
        except OSError:
            return []

    def sample(self):
        while not self.done.wait(0.1):
            self.driver = max(self.driver, self.kib(self.pid, "VmHWM"))
            for child in self.children(self.pid):
                self.bridge = max(self.bridge, self.kib(child, "VmHWM"))
            self.scheduler = max(self.scheduler, self.kib(self.cluster.scheduler_pid, "VmRSS"))

    def ping(self):
        while not self.done.wait(0.5):
            t = time.perf_counter()
            try:
                self.cluster.client.run_on_scheduler(lambda: 1)
            except Exception:
                pass
            self.slowest = max(self.slowest, time.perf_counter() - t)

    def stop(self):
        self.done.set()
        for t in self.threads:
            t.join()


def timed(argv, env=None, cwd=None, timeout=900, cluster=None):
    """Runs a whole process: (seconds, exit code, stdout, watch or None)."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
                            text=True)
    watch = Watch(cluster, proc.pid) if cluster is not None else None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        out += "\nTIMEOUT"
    seconds = time.perf_counter() - t
    if watch is not None:
        watch.stop()
    return seconds, proc.returncode, out + err, watch


def check_ours(shape, code, out):
    want = expected(shape)
    if want is None:
        return None if code == 1 and "boom failed" in out else f"exit {code}, expected a failed `boom`"
    key, value = want
    m = re.search(rf"^  {re.escape(key)} = (.*)$", out, re.M)
    if code == 0 and m and m.group(1).strip() == str(value):
        return None
    return f"exit {code}, {key} = {m.group(1) if m else '?'} (expected {value})"


def run_ours(ctx, shape, mode, cluster, watch=False):
    binary = os.path.join(ctx.bin_dir, f"scale-{shape}")
    storage = tempfile.mkdtemp(dir=ctx.work)
    config = {"resources": {"io_manager": {"config": {"base_dir": storage}}}}
    if mode == "dask-local":
        local = {"n_workers": 2, "threads_per_worker": 1}
        if shape == "gpu":
            local["resources"] = {"GPU": 1}
        config["execution"] = {"config": {"cluster": {"local": local}}}
    elif mode == "dask-existing":
        config["execution"] = {"config": {"cluster": {"existing": {"address": cluster.address}}}}
    path = os.path.join(storage, "run.yaml")
    with open(path, "w") as f:
        json.dump(config, f)  # JSON is YAML
    env = dict(os.environ, DAGSTER_DASK_PYTHON=sys.executable)
    seconds, code, out, w = timed([binary, "run", "-q", "-c", path], env=env,
                                  cluster=cluster if watch else None)
    problem = check_ours(shape, code, out)
    detail = {}
    m = re.search(r"^event log: (\S+)", out, re.M)
    if m and os.path.exists(m.group(1)):
        with open(m.group(1)) as f:
            events = [json.loads(line) for line in f]
        start = next(e["timestamp"] for e in events if e["event_type"] == "RUN_START")
        first = min((e["timestamp"] for e in events if e["event_type"] == "STEP_START"), default=start)
        detail["to_first_step"] = first - start
    shutil.rmtree(storage, ignore_errors=True)
    return seconds, problem, w, detail


RAW_SCRIPT = r'''
import json, subprocess, sys, time
from distributed import Client
address, shape, kind = sys.argv[1:4]
def task(*args):
    if kind == "subprocess":
        subprocess.run(["/bin/true"], check=True)
    return args
def value(i):
    def v(*args):
        task()
        return i
    return v
def add_all(parts):
    task()
    return sum(parts)
def make():
    task()
    return b"\x07" * (10 << 20)
def measure(b):
    task()
    return len(b)
def boom():
    task()
    raise RuntimeError("boom")
t0 = time.perf_counter()
c = Client(address)
name, _, n = shape.partition("-")
resources = None
if name == "fan":
    n = int(n)
    dsk = {"source": (value(1),)}
    for i in range(1, n + 1):
        dsk[f"part_{i}"] = (value(i), "source")
    dsk["sum"] = (add_all, [f"part_{i}" for i in range(1, n + 1)])
    out, want = "sum", n * (n + 1) // 2
elif name == "chain":
    n = int(n)
    dsk = {"c0": (value(0),)}
    for i in range(1, n):
        dsk[f"c{i}"] = (value(i), f"c{i-1}")
    out, want = f"c{n-1}", n - 1
elif shape == "single":
    dsk, out, want = {"one": (value(1),)}, "one", 1
elif shape == "payload":
    dsk = {"make": (make,), "pass": (lambda b: (task(), b)[1], "make"), "measure": (measure, "pass")}
    out, want = "measure", 10 << 20
elif shape == "gpu":
    dsk, out, want, resources = {"train": (value(2),)}, "train", 2, {"GPU": 1}
else:
    dsk, out, want = {"boom": (boom,), "after": (value(0), "boom")}, "after", None
t1 = time.perf_counter()
fut = c.get(dsk, out, sync=False, resources=resources)
submitted = time.perf_counter() - t1
try:
    got = fut.result()
    ok = got == want
except Exception as e:
    got, ok = repr(e), want is None
print("RAW_RESULT " + json.dumps({"ok": ok, "got": str(got)[:80], "submit_s": submitted}))
c.close()
'''


def run_raw(ctx, shape, kind, cluster, watch=False):
    seconds, code, out, w = timed([sys.executable, "-c", RAW_SCRIPT, cluster.address, shape, kind],
                                  cluster=cluster if watch else None)
    m = re.search(r"^RAW_RESULT (.*)$", out, re.M)
    if not m:
        return seconds, f"exit {code}: {out[-300:]}", w, {}
    result = json.loads(m.group(1))
    return seconds, None if result["ok"] else f"got {result['got']}", w, {"to_first_step": result["submit_s"]}


def run_peer(ctx, shape, mode, cluster):
    env = dict(os.environ, DAGSTER_HOME=ctx.dagster_home, PYTHONPATH=HERE)
    seconds, code, out, _ = timed([sys.executable, os.path.join(HERE, "peer.py"), shape, mode,
                                   cluster.address], env=env)
    m = re.search(r"^PEER_RESULT (.*)$", out, re.M)
    if not m:
        return seconds, f"exit {code}: {out.strip().splitlines()[-1] if out.strip() else ''}"[:200], None, {}
    result = json.loads(m.group(1))
    want = expected(shape)
    if want is None:
        return seconds, None if not result["success"] else "succeeded, expected a failure", None, {}
    if not result["success"]:
        return seconds, "failed", None, {}
    if result["value"] != want[1]:
        return seconds, f"WRONG RESULT: {want[0]} = {result['value']} (expected {want[1]})", None, {}
    return seconds, None, None, {}


# -- the report -------------------------------------------------------------------------------

def cell(times):
    if not times:
        return "-"
    return f"{min(times):.2f} / {statistics.median(times):.2f}"


def machine_facts():
    def sh(*argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True).stdout.strip()
        except OSError:
            return "?"
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / (1 << 20):.1f} GiB"
    except OSError:
        pass
    import dagster
    import distributed
    return [f"{platform.system()} {platform.release()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu}), {mem}",
            f"Python {platform.python_version()}, distributed {distributed.__version__}, "
            f"dagster {dagster.__version__}, {sh('rustc', '--version')}"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--quick", action="store_true", help="the small shapes only, 3 repetitions")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--out", default=os.path.join(ROOT, "benches", "RESULTS.md"))
    args = ap.parse_args()
    reps = args.reps or (3 if args.quick else 5)

    class Ctx:
        pass

    ctx = Ctx()
    ctx.work = tempfile.mkdtemp(prefix="dagster-dask-scale-")
    ctx.bin_dir = os.path.join(ctx.work, "bin")
    ctx.dagster_home = os.path.join(ctx.work, "dagster-home")
    os.makedirs(ctx.bin_dir)
    os.makedirs(ctx.dagster_home)
    with open(os.path.join(ctx.dagster_home, "dagster.yaml"), "w") as f:
        f.write("telemetry:\n  enabled: false\n")
    shapes = SMALL + ([] if args.quick else LARGE)
    for shape in set(shapes + ([] if args.quick else GROWTH)):
        # The shape is the binary's name: workers run the same file and build the same job.
        shutil.copy(args.binary, os.path.join(ctx.bin_dir, f"scale-{shape}"))
    cluster = Cluster(sys.executable, ctx.work)
    print(f"cluster {cluster.address}; work dir {ctx.work}", flush=True)
    times, problems = {}, {}

    def record(shape, tool, seconds, problem):
        times.setdefault((shape, tool), []).append(seconds)
        if problem:
            problems.setdefault((shape, tool), problem)
        print(f"  {shape:11} {tool:24} {seconds:8.2f} s {('  ' + problem) if problem else ''}", flush=True)

    try:
        for shape in shapes:
            n = reps if shape in SMALL else 1
            for _ in range(n):  # alternating: one run of each tool per round
                for mode in OURS:
                    s, p, _, _ = run_ours(ctx, shape, mode, cluster)
                    record(shape, f"ours {mode}", s, p)
                for kind in RAW:
                    s, p, _, _ = run_raw(ctx, shape, kind, cluster)
                    record(shape, f"raw {kind}", s, p)
                if shape in SMALL:
                    for mode in PEER:
                        s, p, _, _ = run_peer(ctx, shape, mode, cluster)
                        record(shape, f"peer {mode}", s, p)
        growth = []
        if not args.quick:
            for shape in GROWTH:
                for tool, fn, how in (("ours dask-existing", run_ours, "dask-existing"),
                                      ("raw subprocess", run_raw, "subprocess")):
                    s, p, w, d = fn(ctx, shape, how, cluster, watch=True)
                    growth.append((shape, tool, s, p, w, d))
                    print(f"  growth {shape:11} {tool:20} {s:8.2f} s {p or ''}", flush=True)
    finally:
        cluster.close()
    report(args, ctx, shapes, times, problems, growth, reps)
    shutil.rmtree(ctx.work, ignore_errors=True)
    ours_wrong = [k for k in problems if k[1].startswith("ours")]
    sys.exit(1 if ours_wrong else 0)


def report(args, ctx, shapes, times, problems, growth, reps):
    tools = [f"ours {m}" for m in OURS] + [f"raw {k}" for k in RAW] + [f"peer {m}" for m in PEER]
    lines = ["# Scale benchmark results", "",
             f"`bash benches/scale/run.sh{' --quick' if args.quick else ''}` on "
             f"{time.strftime('%Y-%m-%d')}; whole processes, seconds, min / median of {reps} "
             f"(one run for 1,000 steps and up), shapes and tools alternating on one loopback "
             f"cluster (scheduler + 2 single-thread workers, one with GPU=1).", ""]
    lines += [f"* {fact}" for fact in machine_facts()]
    lines += ["", "| shape | steps | " + " | ".join(tools) + " | ours/raw subprocess | peer/ours |",
              "|---|---" + "|---" * len(tools) + "|---|---|"]
    for shape in shapes:
        row = [shape, str(steps_of(shape))]
        for tool in tools:
            t = times.get((shape, tool), [])
            row.append(cell(t) + (" ✗" if (shape, tool) in problems else ""))
        ours = times.get((shape, "ours dask-existing"))
        raw = times.get((shape, "raw subprocess"))
        peer = times.get((shape, "peer dask-existing"))
        row.append(f"{statistics.median(ours) / statistics.median(raw):.2f}" if ours and raw else "-")
        row.append(f"{statistics.median(peer) / statistics.median(ours):.1f}" if ours and peer else "-")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Every result is checked (the sink's value, or the failing job's failure). "
              "✗ marks a wrong or failed result:"]
    lines += [f"* {shape}, {tool}: {p}" for (shape, tool), p in sorted(problems.items())] or ["* none"]
    if growth:
        lines += ["", "## Growth (existing cluster, one run each)", "",
                  "| shape | tool | total s | to first step s | steps/s | driver peak MiB | "
                  "bridge peak MiB | scheduler peak RSS MiB | slowest scheduler ping s | result |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for shape, tool, s, p, w, d in growth:
            n = steps_of(shape)
            bridge = f"{w.bridge / 1024:.0f}" if tool.startswith("ours") else "-"
            lines.append(f"| {shape} | {tool} | {s:.2f} | {d.get('to_first_step', 0):.2f} | "
                         f"{n / s:.0f} | {w.driver / 1024:.0f} | {bridge} | "
                         f"{w.scheduler / 1024:.0f} | {w.slowest:.2f} | {p or 'ok'} |")
        lines += ["", "For raw Dask, \"to first step\" is the time `Client.get` took to submit "
                  "the whole graph, and the driver is the Python client process."]
    text = "\n".join(lines) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
