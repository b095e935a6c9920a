"""dagster-dask bridge: drives a `distributed` cluster for the Rust driver.

Protocol: JSON lines. The driver writes commands on our stdin; we write messages on our
stdout (the protocol) and log on stderr. Commands:

  {"op": "connect", "cluster": "local", "kwargs": {...}}
  {"op": "connect", "cluster": "existing", "address": "...", "timeout": 10}
  {"op": "submit", "run_id": R, "binary": B, "config_json": C, "no_worker_timeout": S,
   "cluster_timeout": S, "ship_binary": "auto"|"always"|"never", "platform": [OS, ARCH],
   "steps": [{"step": S, "deps": [S...], "resources": {...}, "max_runtime": S}]}
                                                                   (topological order)
  {"op": "retry", "step": S, "attempt": N}
  {"op": "cancel"}
  {"op": "close"}

Messages:
  {"type": "connected", "dashboard": URL|null, "workers": {name: resources}}
  {"type": "line", "step": S, "attempt": N, "worker": W, "stream": "stdout"|"stderr", "line": L}
  {"type": "done", "step": S, "attempt": N,
   "status": "success"|"failed"|"killed"|"no_worker"|"cancelled"|"timeout",
   "worker": W|null, "lines": N|null, "message": M|null, "exit_code": N|null}
  {"type": "info", "message": M}
  {"type": "heartbeat", "client": STATUS}                  (every second once connected)
  {"type": "canceled"}
  {"type": "fatal", "message": M}

Each step is a Dask task whose function (defined here, shipped by value with cloudpickle)
runs the job binary in step mode and forwards every output line to us, live, in batches
(every 50 ms at most) through `Worker.log_event`; the run's topic is dropped from the
scheduler when the run ends. The step process writes its own messages on a pipe of their own
(`--events /dev/fd/N`, forwarded as stream "events"), so that nothing an op prints can pass
for one. The run config is one task per run, fetched once per worker, and written to each step
process's stdin: it is in no argv and in no task. Data never goes through Dask: the task
returns a small status record. A step that fails raises, so Dask never runs what depends on
it.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time


def emit(msg, _lock=threading.Lock()):
    line = json.dumps(msg, separators=(",", ":"))
    with _lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def log(*parts):
    print("dagster-dask bridge:", *parts, file=sys.stderr, flush=True)


try:
    import distributed
    from distributed import Client, LocalCluster
    from distributed.diagnostics.plugin import WorkerPlugin
    from dask.highlevelgraph import HighLevelGraph, MaterializedLayer
except ImportError as e:  # the driver turns this into a one-line install hint
    emit({"type": "fatal", "message": f"cannot import distributed: {e}", "missing": True})
    sys.exit(3)


class StepFailed(Exception):
    """A step's task failed: its process exited non-zero (`lines` says how many lines it
    forwarded), or it could not run at all (`reason`)."""

    def __init__(self, step, attempt, exit_code, lines, worker, reason=None, timed_out=False):
        super().__init__(
            reason or f"step `{step}` attempt {attempt} exited with code {exit_code} on {worker}"
        )
        self.timed_out = timed_out
        self.step = step
        self.attempt = attempt
        self.exit_code = exit_code
        self.lines = lines
        self.worker = worker


class ConnectError(Exception):
    """Why the bridge could not use the cluster it was pointed at."""


def connect_existing(address, timeout):
    """`Client(address)`, within `timeout` (plus a little) whatever the peer does: a port
    that accepts and stays silent, or speaks something else, is named as such."""
    box = {}

    def attempt():
        try:
            box["client"] = Client(address, timeout=timeout)
        except BaseException as e:  # handed to the caller
            box["error"] = e

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(timeout + 5)
    if t.is_alive():
        raise ConnectError(
            f"no answer from {address} within {timeout + 5:g} s: is it a Dask scheduler's "
            f"address? (a scheduler listens on tcp://HOST:8786 by default; 8787 is its dashboard)")
    error = box.get("error")
    if error is None:
        return box["client"]
    if isinstance(error, (OSError, TimeoutError)) and not isinstance(error, MemoryError):
        raise error
    raise ConnectError(
        f"{address} does not answer as a Dask scheduler ({type(error).__name__}: {error}): "
        f"check the address and port (a scheduler listens on 8786 by default; 8787 is its "
        f"dashboard)")


SHIP_DIR = "dagster-dask-bin"


def normalize_platform(system, machine):
    system, machine = system.lower(), machine.lower()
    system = {"darwin": "macos"}.get(system, system)  # Rust's std::env::consts::OS names
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    return [system, machine]


class ShipBinary(WorkerPlugin):
    """Puts the job binary in each worker's local directory, once per content hash; also on
    workers that join later. A worker of another OS or architecture gets a marker instead,
    so that its steps fail with a clear message."""

    def __init__(self, data, digest, platform):
        self.data = data
        self.digest = digest
        self.platform = platform

    def setup(self, worker):
        import os as _os
        import platform as _platform

        directory = _os.path.join(worker.local_directory, SHIP_DIR)
        _os.makedirs(directory, exist_ok=True)
        path = _os.path.join(directory, self.digest)
        here = normalize_platform(_platform.system(), _platform.machine())
        if here != self.platform:
            with open(path + ".wrong-platform", "w") as f:
                f.write(f"this worker runs {here[0]}/{here[1]}, the job binary was built for "
                        f"{self.platform[0]}/{self.platform[1]}")
            return
        if not _os.path.exists(path):
            tmp = f"{path}.{_os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                f.write(self.data)
            _os.chmod(tmp, 0o755)
            _os.replace(tmp, path)


def scheduler_alive(dask_scheduler=None):
    """Runs on the scheduler: answers a ping."""
    return True


def scheduler_workers(dask_scheduler=None):
    """Runs on the scheduler: every worker it has, by name, with its resources."""
    return {str(ws.name): dict(ws.resources or {}) for ws in dask_scheduler.workers.values()}


def drop_topic(topic, dask_scheduler=None):
    """Runs on the scheduler: forgets a topic's retained events."""
    broker = getattr(dask_scheduler, "_broker", None)
    topics = getattr(broker, "_topics", None)
    if topics is not None:
        topics.pop(topic, None)


def run_config(config_json):
    """The task that holds the run's config for its steps."""
    return config_json


def _reported_success(line):
    """Whether a step process's last message says its attempt succeeded."""
    import json as _json

    try:
        msg = _json.loads(line)
        return msg.get("msg") == "ended" and msg.get("body", {}).get("outcome") == "success"
    except (ValueError, AttributeError):
        return False


def run_step(spec_json, config_json, *upstream):
    """The Dask task of one step: run the job binary in step mode on this worker.

    Every error leaves as a `StepFailed` that names the step, so that the bridge can tell a
    step's own failure from the same error Dask hands to everything downstream of it."""
    import json as _json

    spec = _json.loads(spec_json)
    try:
        return _run_step(spec, config_json)
    except StepFailed:
        raise
    except Exception as e:
        raise StepFailed(spec["step"], spec["attempt"], None, None, None, f"{type(e).__name__}: {e}") from None


def _run_step(spec, config_json):
    import os as _os
    import signal as _signal
    import subprocess as _subprocess
    import threading as _threading
    import time as _time

    from distributed import get_worker

    worker = get_worker()
    name = worker.name if worker.name is not None else worker.address
    step, attempt, topic = spec["step"], spec["attempt"], spec["topic"]
    argv = list(spec["argv"])
    if spec.get("shipped"):
        shipped = _os.path.join(worker.local_directory, SHIP_DIR, spec["shipped"])
        marker = shipped + ".wrong-platform"
        if _os.path.exists(marker):
            with open(marker) as f:
                raise StepFailed(step, attempt, None, None, str(name),
                                 f"worker {name}: {f.read()}; run workers on the driver's OS and architecture")
        argv[0] = shipped
    elif not _os.access(argv[0], _os.X_OK):
        raise StepFailed(step, attempt, None, None, str(name),
                         f"worker {name} cannot run the job binary at {argv[0]}: set "
                         f"`ship_binary: auto` (or `always`) in execution.config to ship it")
    events_r, events_w = _os.pipe()
    argv += ["--events", f"/dev/fd/{events_w}", "--config-stdin"]
    try:
        proc = _subprocess.Popen(
            argv,
            stdout=_subprocess.PIPE,
            stderr=_subprocess.PIPE,
            stdin=_subprocess.PIPE,
            pass_fds=(events_w,),
            start_new_session=True,  # its own process group: a cancel kills it and its children
        )
    except BaseException:
        _os.close(events_r)
        raise
    finally:
        _os.close(events_w)

    def feed_config():
        try:
            proc.stdin.write(config_json.encode("utf-8"))
            proc.stdin.close()
        except OSError:
            pass  # it ended before reading its config: its exit says why

    counter = {"n": 0, "last_event": ""}
    # Output lines go to the scheduler in batches: at most every 50 ms, or sooner once 1,000
    # lines or 1 MB wait, so a chatty step neither floods the scheduler nor waits to be seen.
    pending = {"lines": [], "bytes": 0}
    pending_lock = _threading.Lock()
    reading_done = _threading.Event()

    def flush():
        with pending_lock:
            batch = pending["lines"]
            pending["lines"], pending["bytes"] = [], 0
            if batch:
                # (the scheduler overwrites a "worker" key with the worker's address)
                worker.log_event(topic, {"step": step, "attempt": attempt,
                                         "worker_name": str(name), "lines": batch})
                counter["n"] += len(batch)

    def flusher():
        while not reading_done.wait(0.05):
            flush()

    def forward(stream, label):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if label == "events":
                counter["last_event"] = line
            with pending_lock:
                pending["lines"].append([label, line])
                pending["bytes"] += len(line)
                full = len(pending["lines"]) >= 1000 or pending["bytes"] >= 1 << 20
            # The step's own messages (start, inputs, outputs, logs, end) go at once, with the
            # lines before them: the driver must know what runs, even if it is killed next.
            if full or label == "events":
                flush()
        stream.close()

    flushing = _threading.Thread(target=flusher, daemon=True)
    flushing.start()
    readers = [
        _threading.Thread(target=forward, args=(proc.stdout, "stdout"), daemon=True),
        _threading.Thread(target=forward, args=(proc.stderr, "stderr"), daemon=True),
        _threading.Thread(target=forward, args=(_os.fdopen(events_r, "rb"), "events"), daemon=True),
        _threading.Thread(target=feed_config, daemon=True),
    ]
    for r in readers:
        r.start()

    # A worker whose scheduler is frozen keeps running its tasks (a lost connection closes
    # the worker, and the step with it): the step must not outlive its run by much, so a
    # scheduler unanswered for the run's cluster_timeout ends it too.
    from distributed.utils import sync as _sync

    pinged = {"answered": _time.monotonic()}
    stop_pinging = _threading.Event()

    def pinger():
        while not stop_pinging.wait(1.0):
            try:
                _sync(worker.loop, worker.scheduler.identity, callback_timeout=5)
                pinged["answered"] = _time.monotonic()
            except Exception:
                pass

    orphan_after = float(spec.get("cluster_timeout") or 40)
    _threading.Thread(target=pinger, daemon=True).start()

    key = spec["key"]
    max_runtime = spec.get("max_runtime")
    deadline = None if max_runtime is None else _time.monotonic() + max_runtime
    timed_out = False
    # Dask cannot stop a running task's thread; when the task is cancelled (its state on this
    # worker leaves "executing"), kill the step process group ourselves; the same past the
    # op's max_runtime.
    while True:
        try:
            code = proc.wait(timeout=0.2)
            break
        except _subprocess.TimeoutExpired:
            ts = worker.state.tasks.get(key)
            late = deadline is not None and _time.monotonic() >= deadline
            orphaned = _time.monotonic() - pinged["answered"] > orphan_after
            if late or orphaned or ts is None or ts.state not in ("executing", "long-running"):
                timed_out = timed_out or late
                try:
                    _os.killpg(proc.pid, _signal.SIGKILL)
                except ProcessLookupError:
                    pass
    # The step has ended when its process has. Children the op left behind would keep its
    # pipes open (and run on after it, unseen): its process group goes with it. What is still
    # in the pipes is read for a short while; a child that left the group cannot hold us.
    try:
        _os.killpg(proc.pid, _signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for r in readers:
        r.join(timeout=2.0)
    reading_done.set()
    flushing.join()
    stop_pinging.set()
    flush()
    if timed_out:
        raise StepFailed(step, attempt, code, counter["n"], str(name),
                         f"its process group was killed on worker {name}", timed_out=True)
    if code != 0:
        raise StepFailed(step, attempt, code, counter["n"], str(name))
    if not _reported_success(counter["last_event"]):
        # Exit 0 without a success end: Dask must not run what depends on it.
        raise StepFailed(step, attempt, code, counter["n"], str(name),
                         f"step `{step}` attempt {attempt} exited with code 0 on {name} "
                         f"without reporting success")
    return {"step": step, "attempt": attempt, "worker": str(name), "lines": counter["n"]}


class Bridge:
    def __init__(self):
        self.client = None
        self.cluster = None
        self.run = None
        self.steps = {}  # step -> {"deps": [...], "resources": {...}}
        self.order = []
        self.futures = {}  # step -> current future
        self.generation = {}  # step -> how many times submitted
        self.attempt = {}
        self.waiting_since = {}  # step -> time it was submitted, for resource waits
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.own_cancels = set()  # keys of futures this bridge cancelled itself

    # -- connecting ---------------------------------------------------------------------------

    def connect(self, cmd):
        if cmd["cluster"] == "local":
            kwargs = dict(cmd.get("kwargs") or {})
            kwargs.setdefault("threads_per_worker", 1)
            kwargs.setdefault("dashboard_address", ":0")
            kwargs.setdefault("processes", True)
            self.cluster = LocalCluster(**kwargs)
            self.client = Client(self.cluster)
        else:
            self.client = connect_existing(cmd["address"], float(cmd.get("timeout", 10)))
            self.check_versions()
        try:
            dashboard = self.client.dashboard_link
        except Exception:
            dashboard = None
        workers = self.client.run_on_scheduler(scheduler_workers)
        emit({"type": "connected", "dashboard": dashboard, "workers": workers})
        threading.Thread(target=self.heartbeat, daemon=True).start()

    def check_versions(self):
        """The task function travels pickled by value: workers must run our Python minor
        version. Another `distributed` may work, so that is only said."""
        try:
            versions = self.client.get_versions(check=False)
        except Exception as e:  # an old or busy scheduler: go on without the check
            emit({"type": "info", "message": f"could not compare versions with the cluster: {e}"})
            return
        def of(info):
            python = str(info.get("host", {}).get("python", "?"))
            return ".".join(python.split(".")[:2]), str(info.get("packages", {}).get("distributed", "?"))
        mine = of(versions.get("client", {}))
        others = {"the scheduler": of(versions.get("scheduler") or {})}
        for addr, info in (versions.get("workers") or {}).items():
            others[f"worker {addr}"] = of(info or {})
        python_off = sorted(f"{who} runs Python {v[0]}" for who, v in others.items()
                            if v[0] not in ("?", mine[0]))
        if python_off:
            raise ConnectError(
                f"this driver's Python is {mine[0]}, but {', '.join(python_off)}: steps travel "
                f"pickled by value and need the same Python minor version everywhere")
        dist_off = sorted(f"{who} has distributed {v[1]}" for who, v in others.items()
                          if v[1] not in ("?", mine[1]))
        if dist_off:
            emit({"type": "info", "message": f"this driver has distributed {mine[1]}, but "
                                             f"{', '.join(dist_off)}: if steps fail oddly, "
                                             f"align the versions"})

    def heartbeat(self):
        """Tells the driver every second that we are alive, and how our client stands with the
        scheduler: "running", or how it is not ("connecting"/"closed" once the connection is
        lost; "unanswered" when the scheduler has not answered a ping for 10 s, as a frozen
        scheduler does while its connection stays open)."""
        ping = {"answered": time.monotonic(), "asking": False}

        def ask():
            try:
                self.client.run_on_scheduler(scheduler_alive)
                ping["answered"] = time.monotonic()
            except Exception:
                pass
            finally:
                ping["asking"] = False

        while not self.closed.wait(1.0):
            if not ping["asking"]:  # one ping at a time: a frozen scheduler holds one thread
                ping["asking"] = True
                threading.Thread(target=ask, daemon=True).start()
            status = str(self.client.status)
            silent = time.monotonic() - ping["answered"]
            if status == "running" and silent > 10:
                status = f"unanswered for {silent:.0f} s"
            emit({"type": "heartbeat", "client": status})

    # -- submitting -----------------------------------------------------------------------------

    def submit(self, cmd):
        self.run = cmd
        self.topic = f"dagster-dask-{cmd['run_id']}"
        self.client.subscribe_topic(self.topic, self.on_line)
        for s in cmd["steps"]:
            self.steps[s["step"]] = s
            self.order.append(s["step"])
            self.attempt[s["step"]] = 1
            self.generation[s["step"]] = 0
        self.shipped = self.ship_binary(cmd)
        self.config = None
        self.config_generation = 0
        self.submit_steps(self.order)
        threading.Thread(target=self.watch_resources, daemon=True).start()

    def ship_binary(self, cmd):
        """Returns the content hash workers run the binary by, or None to run it in place."""
        import hashlib

        mode = cmd.get("ship_binary", "auto")
        if mode == "never":
            return None
        binary = cmd["binary"]
        if mode == "auto":
            size = os.path.getsize(binary)

            def visible(path=binary, size=size):
                import os as _os
                return _os.access(path, _os.X_OK) and _os.path.getsize(path) == size

            seen = self.client.run(visible)
            if seen and all(seen.values()):
                return None
        with open(binary, "rb") as f:
            data = f.read()
        digest = hashlib.sha256(data).hexdigest()[:32]
        self.client.register_plugin(
            ShipBinary(data, digest, cmd["platform"]), name=f"dagster-dask-bin-{digest}"
        )
        emit({"type": "info", "message": f"shipped the job binary ({len(data) / 1e6:.1f} MB, "
                                         f"sha256 {digest[:12]}) to the workers' local directories"})
        return digest

    def key_of(self, step):
        gen = self.generation[step]
        base = f"{step}-{self.run['run_id']}"
        return base if gen == 0 else f"{base}-{gen}"

    def submit_steps(self, steps):
        """Submits `steps` (topological order) as one graph.

        A dependency inside the submission is named by its key; one outside it (a step that
        already succeeded) is passed as its future, which Dask treats as a dependency too.
        """
        # Tasks go in as few layers as their resources allow: a layer carries one resources
        # annotation, so consecutive steps (in topological order) that ask for the same
        # resources share one. (A layer per step kept the scheduler's event loop busy for
        # a minute on a 10,000-step submission.)
        layers, layer_deps, keys = {}, {}, []
        layer_of = {}  # key -> the layer holding it
        layer_resources = {}
        current = None
        in_graph = set(steps)
        # The run config: one task holds it, and each worker fetches it once, as a dependency.
        # (Not `scatter`: that waits for a worker, and a cluster may have none yet.) Submitted
        # again when someone else's restart cancelled it.
        if self.config is None or self.config.status in ("cancelled", "lost", "error"):
            self.config_generation += 1
            self.config = self.client.submit(
                run_config, self.run["config_json"], pure=False,
                key=f"run-config-{self.run['run_id']}-{self.config_generation}",
            )
        with self.lock:
            for step in steps:
                spec = self.steps[step]
                key = self.key_of(step)
                argv = [
                    self.run["binary"], "__step",
                    "--run-id", self.run["run_id"],
                    "--step", step,
                    "--attempt", str(self.attempt[step]),
                ]
                task_spec = json.dumps(
                    {"step": step, "attempt": self.attempt[step], "topic": self.topic, "key": key,
                     "argv": argv, "shipped": self.shipped,
                     "max_runtime": spec.get("max_runtime"),
                     "cluster_timeout": self.run.get("cluster_timeout", 40)}
                )
                # A dependency outside the submission has succeeded (the driver resubmits a
                # step only then): its future only orders, so one that someone else's restart
                # cancelled is left out rather than failing the step.
                args = [
                    self.key_of(d) if d in in_graph else self.futures[d]
                    for d in spec["deps"]
                    if d in in_graph or (self.futures[d] is not None
                                         and self.futures[d].status in ("pending", "finished"))
                ]
                resources = spec["resources"] or None
                if current is None or resources != layer_resources[current]:
                    current = f"{key}-layer"
                    layer_resources[current] = resources
                    layers[current] = {}
                    layer_deps[current] = set()
                layers[current][key] = (run_step, task_spec, self.config, *args)
                layer_of[key] = current
                layer_deps[current].update(
                    layer_of[self.key_of(d)] for d in spec["deps"] if d in in_graph
                )
                keys.append(key)
                self.waiting_since[step] = time.monotonic()
        for name in layers:
            layer_deps[name].discard(name)
        layers = {
            name: MaterializedLayer(
                tasks,
                annotations={"resources": layer_resources[name]} if layer_resources[name] else None,
            )
            for name, tasks in layers.items()
        }
        futures = self.client.get(HighLevelGraph(layers, layer_deps), keys, sync=False)
        with self.lock:
            for step, fut in zip(steps, futures):
                self.futures[step] = fut
                attempt = self.attempt[step]
                fut.add_done_callback(lambda f, s=step, a=attempt: self.on_done(s, a, f))

    def on_line(self, event):
        _, msg = event
        head = {"type": "line", "step": msg.get("step"), "attempt": msg.get("attempt"),
                "worker": msg.get("worker_name", msg.get("worker"))}
        for stream, line in msg.get("lines", ()):
            emit({**head, "stream": stream, "line": line})

    def on_done(self, step, attempt, fut):
        with self.lock:
            if self.attempt.get(step) != attempt or self.futures.get(step) is not fut:
                return  # an old generation
            self.waiting_since.pop(step, None)
        status = fut.status
        if status == "finished":
            try:
                result = fut.result()
            except Exception as e:  # pragma: no cover - finished futures have results
                emit({"type": "done", "step": step, "attempt": attempt, "status": "failed", "message": str(e)})
                return
            emit({"type": "done", "step": step, "attempt": attempt, "status": "success",
                  "worker": result["worker"], "lines": result["lines"]})
            return
        if status == "cancelled":
            with self.lock:
                ours = fut.key in self.own_cancels
            if ours:
                return  # the driver canceled, or a step upstream found no worker
            # Someone else: another client's restart, or the scheduler connection lost.
            exc = getattr(getattr(fut, "_state", None), "exception", None)
            emit({"type": "done", "step": step, "attempt": attempt, "status": "cancelled",
                  "message": str(exc) if exc is not None else "cancelled"})
            return
        try:
            exc = fut.exception()
        except Exception as e:
            exc = e
        # Compared by name: the exception class comes back through pickle.
        if type(exc).__name__ == "StepFailed":
            if getattr(exc, "step", None) != step:
                return  # erred because an upstream failed: the driver skips it
            status = "timeout" if getattr(exc, "timed_out", False) else "failed"
            emit({"type": "done", "step": step, "attempt": attempt, "status": status,
                  "worker": exc.worker, "lines": exc.lines, "message": str(exc),
                  "exit_code": exc.exit_code})
            return
        name = type(exc).__name__
        if name == "KilledWorker":
            task = getattr(exc, "task", None)
            if task is not None and task != fut.key:
                return
            emit({"type": "done", "step": step, "attempt": attempt, "status": "killed",
                  "message": f"KilledWorker: {exc}"})
            return
        emit({"type": "done", "step": step, "attempt": attempt, "status": "failed",
              "message": f"{name}: {exc}"})

    def retry(self, cmd):
        step = cmd["step"]
        # The failed step and everything downstream of it (erred with it) go again.
        again = self.downstream_of(step) | {step}
        todo = [s for s in self.order if s in again]
        with self.lock:
            self.attempt[step] = cmd["attempt"]
            for s in todo:
                self.generation[s] += 1
        self.submit_steps(todo)

    def watch_resources(self):
        """Fails steps that no worker can take (none offers their resources, or there is no
        worker at all) for `no_worker_timeout` seconds: Dask itself would wait forever."""
        timeout = float(self.run.get("no_worker_timeout", 30))
        while not self.closed.wait(0.5):
            with self.lock:
                waiting = list(self.waiting_since.items())
            if not waiting:
                continue
            # The scheduler's own table of workers. A scheduler too busy to answer tells us
            # nothing (and not "no worker"): the next round asks again.
            try:
                workers = self.client.run_on_scheduler(scheduler_workers)
            except Exception:
                continue
            now = time.monotonic()
            for step, since in waiting:
                need = self.steps[step]["resources"]
                offered = any(all(res.get(k, 0) >= v for k, v in need.items()) for res in workers.values())
                if offered:
                    with self.lock:
                        if step in self.waiting_since:
                            self.waiting_since[step] = now
                    continue
                if now - since >= timeout:
                    below = self.downstream_of(step)
                    with self.lock:
                        if self.waiting_since.pop(step, None) is None:
                            continue
                        fut = self.futures[step]
                        attempt = self.attempt[step]
                        self.futures[step] = None
                        # Dask cancels what depends on it too: those are ours as well.
                        self.own_cancels.add(fut.key)
                        self.own_cancels.update(
                            f.key for s, f in self.futures.items()
                            if f is not None and s in below)
                    self.client.cancel([fut], force=True)
                    if need:
                        why = f"no worker offers the resources {json.dumps(need)}"
                    else:
                        why = "the cluster has no worker"
                    emit({"type": "done", "step": step, "attempt": attempt, "status": "no_worker",
                          "message": f"{why} after waiting {timeout:g} s; workers and their "
                                     f"resources: {json.dumps(workers)}"})

    def downstream_of(self, step):
        """Every step that depends on `step`, directly or not."""
        below = {step}
        for s in self.order:
            if any(d in below for d in self.steps[s]["deps"]):
                below.add(s)
        below.discard(step)
        return below

    def forget_topic(self):
        """Nothing of the run stays in the scheduler: its log topic goes with it."""
        try:
            self.client.unsubscribe_topic(self.topic)
            self.client.run_on_scheduler(drop_topic, self.topic)
        except Exception as e:  # a lost scheduler keeps nothing anyway
            log(f"could not drop the run's log topic: {e}")

    def cancel(self):
        with self.lock:
            futures = [f for f in self.futures.values() if f is not None]
            self.futures = {s: None for s in self.futures}
            self.own_cancels.update(f.key for f in futures)
        if futures:
            self.client.cancel(futures, force=True)
        emit({"type": "canceled"})

    def close(self):
        self.closed.set()
        try:
            if self.client is not None:
                if self.run is not None:
                    self.forget_topic()
                # distributed keeps a closed client's subscriptions to these forever.
                for topic in ("print", "warn"):
                    try:
                        self.client.unsubscribe_topic(topic)
                    except Exception:
                        pass
                self.client.close(timeout=10)
        finally:
            if self.cluster is not None:
                self.cluster.close(timeout=10)


def main():
    bridge = Bridge()
    # A Ctrl-C in the terminal reaches the whole process group: the driver decides what to do.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for raw in sys.stdin:
            raw = raw.strip()
            if not raw:
                continue
            cmd = json.loads(raw)
            op = cmd.get("op")
            try:
                if op == "connect":
                    bridge.connect(cmd)
                elif op == "submit":
                    bridge.submit(cmd)
                elif op == "retry":
                    bridge.retry(cmd)
                elif op == "cancel":
                    bridge.cancel()
                elif op == "close":
                    break
                else:
                    emit({"type": "fatal", "message": f"unknown command {op!r}"})
            except Exception as e:
                message = str(e) if isinstance(e, ConnectError) else f"{type(e).__name__}: {e}"
                emit({"type": "fatal", "message": message})
                if op == "connect":
                    break
    finally:
        bridge.close()


if __name__ == "__main__":
    main()
