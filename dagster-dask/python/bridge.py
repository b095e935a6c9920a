"""dagster-dask bridge: drives a `distributed` cluster for the Rust driver.

Protocol: JSON lines. The driver writes commands on our stdin; we write messages on our
stdout (the protocol) and log on stderr. Commands:

  {"op": "connect", "cluster": "local", "kwargs": {...}}
  {"op": "connect", "cluster": "existing", "address": "...", "timeout": 10}
  {"op": "submit", "run_id": R, "binary": B, "config_json": C, "no_worker_timeout": S,
   "cluster_timeout": S, "ship_binary": "auto"|"always"|"never", "platform": [OS, ARCH],
   "step_args": [A...]                         (for every step process: the op selection)
   "steps": [{"step": S, "deps": [S...], "resources": {...}, "max_runtime": S,
              "gated": true|absent}]}                              (topological order)
  {"op": "retry", "step": S, "attempt": N}
  {"op": "add", "steps": [...]}          (steps made while the run goes, one per mapping key
                                          of a dynamic output: gated, like submit's)
  {"op": "release", "step": S}           (a gated step: it reads an optional output, so
                                          the driver says when it runs, if it runs)
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
has the step run on this worker by a warm runner of the job binary (`__serve`: one per run
and worker thread, started by the first step that needs it, stopped when the run ends or
after RUNNER_IDLE_S idle) and forwards every output line to us, live, in batches (every 50
ms at most) through `Worker.log_event`; the run's topic is dropped from the scheduler when
the run ends. The runner writes its messages on a pipe of their own (`--events /dev/fd/N`,
forwarded as stream "events"), so that nothing an op prints can pass for one. The run config
reaches the workers once, as a worker plugin of the run, and each runner's stdin: it is in no
argv and in no task. Data never goes through Dask: the task returns a small receipt. Steps
are submitted as they become ready (see `Bridge.submitter`), so nothing downstream of a
failed step is ever submitted.
"""

import heapq
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
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            pass  # the driver is gone (or closed us): there is no one left to tell


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


class RunSteps(WorkerPlugin):
    """A run's part on every worker (those that join later too): its config, in no task and
    no argv, and the code that runs its steps, so that each task carries only a small stub
    and the step's spec (this code in every task made each 24 KB for the scheduler to hold
    and send). Removed when the run ends."""

    def __init__(self, config_json, step_args=()):
        self.config_json = config_json
        self.step_args = list(step_args)

    def run_step(self, spec):
        """Runs one step (see `_run_step`); every error leaves as a `StepFailed` that names
        the step."""
        try:
            return _run_step(spec, self.config_json, self.step_args)
        except StepFailed:
            raise
        except Exception as e:
            raise StepFailed(spec["step"], spec["attempt"], None, None, None,
                             f"{type(e).__name__}: {e}") from None


def run_plugin_name(run_id):
    return f"dagster-dask-run-{run_id}"  # (spelled out in `run_step` too: it travels alone)


# A worker keeps its warm runners on itself (tasks are unpickled afresh each time, so module
# globals would not last): {"lock", "idle": [Runner], "reaper": bool}.
RUNNERS = "_dagster_dask_runners"
# A runner nobody asked for a step this long goes: a run's own end stops its runners at once,
# this catches runs whose driver never said so.
RUNNER_IDLE_S = 5.0


class Runner:
    """A warm runner of the job binary (`__serve`) on this worker: runs the steps of one run,
    one at a time, as requests come, on a pipe of its own. Its stdout, stderr and messages
    are read all along and handed to whichever attempt runs; an attempt's output ends on each
    stream with a marker only its request carried."""

    def __init__(self, binary, run_id, config_json, step_args=()):
        import os as _os
        import subprocess as _subprocess
        import threading as _threading
        import time as _time

        self.binary, self.run_id = binary, run_id
        self.cond = _threading.Condition()
        self.current = None  # the Attempt running now
        self.closed_streams = 0
        self.idle_since = _time.monotonic()
        requests_r, requests_w = _os.pipe()
        events_r, events_w = _os.pipe()
        try:
            self.proc = _subprocess.Popen(
                [binary, "__serve", "--run-id", run_id, "--requests", f"/dev/fd/{requests_r}",
                 "--events", f"/dev/fd/{events_w}", "--config-stdin", *step_args],
                stdout=_subprocess.PIPE, stderr=_subprocess.PIPE, stdin=_subprocess.PIPE,
                pass_fds=(requests_r, events_w),
                start_new_session=True,  # its own process group: killing it takes its children
            )
        except BaseException:
            _os.close(requests_w)
            _os.close(events_r)
            raise
        finally:
            _os.close(requests_r)
            _os.close(events_w)
        self.requests = _os.fdopen(requests_w, "wb")
        streams = ((self.proc.stdout, "stdout"), (self.proc.stderr, "stderr"),
                   (_os.fdopen(events_r, "rb"), "events"))
        for stream, label in streams:
            _threading.Thread(target=self._read, args=(stream, label), daemon=True).start()

        def feed_config():
            try:
                self.proc.stdin.write(config_json.encode("utf-8"))
                self.proc.stdin.close()
            except OSError:
                pass  # it ended before reading its config: its exit says why

        _threading.Thread(target=feed_config, daemon=True).start()

    def _read(self, stream, label):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.cond:
                attempt = self.current
                if attempt is None:
                    continue  # between steps: a child an op left behind
                if label != "events" and line.endswith(attempt.marker):
                    head = line[: -len(attempt.marker)]
                    if head:  # the op's last line had no newline
                        attempt.add(label, head)
                    attempt.marked.add(label)
                    self.cond.notify_all()
                    continue
                attempt.add(label, line)
                if label == "events":
                    attempt.last_event = line
                    if line.startswith('{"msg":"ended"'):
                        attempt.ended = True
                        self.cond.notify_all()
                elif attempt.full():
                    self.cond.notify_all()
        stream.close()
        with self.cond:
            self.closed_streams += 1
            self.cond.notify_all()

    def alive(self):
        return self.proc.poll() is None and self.closed_streams == 0

    def kill(self):
        import os as _os
        import signal as _signal

        try:
            _os.killpg(self.proc.pid, _signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.requests.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except Exception:
            pass


def _runners(worker):
    import threading as _threading

    box = getattr(worker, RUNNERS, None)
    if box is None:
        # (two first tasks at once on a multi-threaded worker: the second box wins the
        # attribute, the first's runner is used once and reaped as idle)
        box = {"lock": _threading.Lock(), "idle": [], "reaper": False}
        setattr(worker, RUNNERS, box)
    with box["lock"]:
        if not box["reaper"]:
            box["reaper"] = True
            _threading.Thread(target=_reap_idle, args=(box,), daemon=True).start()
    return box


def _reap_idle(box):
    import time as _time

    while True:
        _time.sleep(1.0)
        now = _time.monotonic()
        with box["lock"]:
            old = [r for r in box["idle"] if now - r.idle_since > RUNNER_IDLE_S or not r.alive()]
            box["idle"] = [r for r in box["idle"] if r not in old]
        for r in old:
            r.kill()


def stop_runners(run_id, dask_worker=None):
    """Runs on each worker when a run ends: its runners go, with whatever their steps left."""
    box = getattr(dask_worker, RUNNERS, None)
    if box is None:
        return 0
    with box["lock"]:
        mine = [r for r in box["idle"] if r.run_id == run_id]
        box["idle"] = [r for r in box["idle"] if r.run_id != run_id]
    for r in mine:
        r.kill()
    return len(mine)


class Attempt:
    """One attempt of a step on a runner: its output as it comes, batched for the scheduler."""

    def __init__(self, step, attempt, marker):
        self.step, self.attempt, self.marker = step, attempt, marker
        self.pending, self.pending_bytes = [], 0
        self.marked = set()
        self.ended = False
        self.last_event = ""
        self.sent = 0

    def add(self, label, line):
        self.pending.append([label, line])
        self.pending_bytes += len(line)

    def full(self):
        return len(self.pending) >= 1000 or self.pending_bytes >= 1 << 20

    def take(self):
        batch, self.pending, self.pending_bytes = self.pending, [], 0
        return batch


def _reported_success(line):
    """Whether a step's last message says its attempt succeeded."""
    import json as _json

    try:
        msg = _json.loads(line)
        return msg.get("msg") == "ended" and msg.get("body", {}).get("outcome") == "success"
    except (ValueError, AttributeError):
        return False


def run_step(spec_json, *upstream):
    """The Dask task of one step: its run's plugin on this worker runs it on a warm runner of
    the job binary. (`upstream`: the receipt of a chain link's upstream step, only there to
    order them.) Kept small: it travels in every task."""
    import json as _json

    from distributed import get_worker

    spec = _json.loads(spec_json)
    worker = get_worker()
    plugin = worker.plugins.get(f"dagster-dask-run-{spec['run_id']}")
    if plugin is None:
        raise RuntimeError(f"worker {worker.name} has no part of run {spec['run_id']}: "
                           f"the run has ended")
    return plugin.run_step(spec)


def _run_step(spec, config_json, step_args=()):
    import os as _os
    import threading as _threading
    import time as _time
    import uuid as _uuid

    from distributed import get_worker

    worker = get_worker()
    name = worker.name if worker.name is not None else worker.address
    step, attempt_no, topic, run_id = spec["step"], spec["attempt"], spec["topic"], spec["run_id"]
    binary = spec["binary"]
    if spec.get("shipped"):
        shipped = _os.path.join(worker.local_directory, SHIP_DIR, spec["shipped"])
        marker = shipped + ".wrong-platform"
        if _os.path.exists(marker):
            with open(marker) as f:
                raise StepFailed(step, attempt_no, None, None, str(name),
                                 f"worker {name}: {f.read()}; run workers on the driver's OS and architecture")
        binary = shipped
    elif not _os.access(binary, _os.X_OK):
        raise StepFailed(step, attempt_no, None, None, str(name),
                         f"worker {name} cannot run the job binary at {binary}: set "
                         f"`ship_binary: auto` (or `always`) in execution.config to ship it")
    box = _runners(worker)
    with box["lock"]:
        runner = next((r for r in box["idle"] if r.run_id == run_id and r.binary == binary
                       and r.alive()), None)
        if runner is not None:
            box["idle"].remove(runner)
    if runner is None:
        runner = Runner(binary, run_id, config_json, step_args)

    attempt = Attempt(step, attempt_no, f"\x1edagster-dask-end-{_uuid.uuid4().hex}")
    with runner.cond:
        runner.current = attempt
    request = _json_line({"step": step, "attempt": attempt_no, "marker": attempt.marker})
    try:
        runner.requests.write(request)
        runner.requests.flush()
    except OSError:
        pass  # it is gone: its exit says why, below

    def send(batch, last=False):
        if batch or last:
            attempt.sent += len(batch)
            # (the scheduler overwrites a "worker" key with the worker's address)
            msg = {"step": step, "attempt": attempt_no, "worker_name": str(name), "lines": batch}
            if last:
                msg["total"] = attempt.sent
            worker.log_event(topic, msg)

    # A worker whose scheduler is frozen keeps running its tasks (a lost connection closes
    # the worker, and the step with it): the step must not outlive its run by much, so a
    # scheduler unanswered for the run's cluster_timeout ends it too. (Asked only of steps
    # that run for a while: most end before the first ping.)
    from distributed.utils import sync as _sync

    pinged = {"answered": _time.monotonic(), "asking": False}

    def ping():
        try:
            _sync(worker.loop, worker.scheduler.identity, callback_timeout=5)
            pinged["answered"] = _time.monotonic()
        except Exception:
            pass
        finally:
            pinged["asking"] = False

    orphan_after = float(spec.get("cluster_timeout") or 40)
    started = _time.monotonic()
    last_ping = started
    max_runtime = spec.get("max_runtime")
    deadline = None if max_runtime is None else started + max_runtime
    key = spec["key"]
    killed = timed_out = False
    ended_at = None
    last_flush = started
    # Lines go to the scheduler in batches: at most every 50 ms, or sooner once 1,000 lines
    # or 1 MB wait, so a chatty step neither floods the scheduler nor waits to be seen.
    while True:
        with runner.cond:
            finished = lambda: (attempt.ended and len(attempt.marked) == 2) or runner.closed_streams == 3
            if not finished() and not attempt.full():
                runner.cond.wait(0.05)
            done = finished()
            now = _time.monotonic()
            batch = attempt.take() if (done or attempt.full() or now - last_flush >= 0.05) else []
            if attempt.ended and ended_at is None:
                ended_at = now
        if batch:
            last_flush = now
            send(batch)
        if done:
            break
        if runner.proc.poll() is not None and not attempt.ended:
            # It exited: what is still in its pipes is read for a short while.
            with runner.cond:
                runner.cond.wait_for(lambda: runner.closed_streams == 3, timeout=2.0)
            break
        if ended_at is not None and now - ended_at > 2.0:
            # Ended, but a stream's marker never came (the op closed or took over stdout or
            # stderr): this runner cannot tell its steps' output apart any more.
            killed = True
            break
        if not pinged["asking"] and now - last_ping >= 1.0:
            pinged["asking"], last_ping = True, now
            _threading.Thread(target=ping, daemon=True).start()
        # Dask cannot stop a running task's thread; when the task is cancelled (its state on
        # this worker leaves "executing"), kill the runner ourselves; the same past the op's
        # max_runtime.
        ts = worker.state.tasks.get(key)
        late = deadline is not None and now >= deadline
        orphaned = now - pinged["answered"] > orphan_after
        if late or orphaned or ts is None or ts.state not in ("executing", "long-running"):
            timed_out = late
            killed = True
            break
    with runner.cond:
        runner.current = None
        batch = attempt.take()
    send(batch, last=True)
    code = runner.proc.poll()
    if killed or code is not None or runner.closed_streams:
        runner.kill()
        code = runner.proc.poll()
    else:
        runner.idle_since = _time.monotonic()
        with box["lock"]:
            box["idle"].append(runner)
    if timed_out:
        raise StepFailed(step, attempt_no, code, attempt.sent, str(name),
                         f"its process group was killed on worker {name}", timed_out=True)
    if attempt.ended and _reported_success(attempt.last_event):
        return {"step": step, "attempt": attempt_no, "worker": str(name), "lines": attempt.sent}
    if attempt.ended:
        raise StepFailed(step, attempt_no, None, attempt.sent, str(name),
                         f"step `{step}` attempt {attempt_no} failed on {name}")
    if code == 0:
        # Exit 0 without a success end: Dask must not count it as done.
        raise StepFailed(step, attempt_no, code, attempt.sent, str(name),
                         f"step `{step}` attempt {attempt_no} exited with code 0 on {name} "
                         f"without reporting success")
    raise StepFailed(step, attempt_no, code, attempt.sent, str(name))


def _json_line(obj):
    import json as _json

    return (_json.dumps(obj, separators=(",", ":")) + "\n").encode("utf-8")


# How many steps of a run are submitted and not settled at most: enough to keep a large
# cluster busy, few enough that the scheduler's work per message stays small.
WINDOW = 1000


class Bridge:
    def __init__(self):
        self.client = None
        self.cluster = None
        self.run = None
        self.steps = {}  # step -> {"deps": [...], "resources": {...}}
        self.futures = {}  # step -> current future
        self.generation = {}  # step -> how many times submitted
        self.attempt = {}
        self.index = {}  # step -> its place in the plan: earlier goes first
        self.missing = {}  # step -> how many steps it depends on have not succeeded
        self.dependents = {}  # step -> the steps that depend on it
        self.ready = []  # heap of (index, step): ready to submit
        self.in_flight = set()  # submitted and not settled
        self.queued = set()  # ready or in flight
        self.succeeded = set()
        self.chain_next = {}  # step -> its only dependent, when that depends on it alone
        self.batches = 0
        self.canceled = False
        self.totals = {}  # (step, attempt) -> (worker, lines) its task's last batch said
        self.waiting_since = {}  # step -> time it was submitted, for resource waits
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)  # the submitter waits on it
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
        for i, s in enumerate(cmd["steps"]):
            step = s["step"]
            self.steps[step] = s
            self.index[step] = i
            self.attempt[step] = 1
            self.generation[step] = 0
            self.missing[step] = len(set(s["deps"]))
            for d in set(s["deps"]):
                self.dependents.setdefault(d, []).append(step)
        self.shipped = self.ship_binary(cmd)
        self.client.register_plugin(RunSteps(cmd["config_json"], cmd.get("step_args", ())),
                                    name=run_plugin_name(cmd["run_id"]))
        for step, below in self.dependents.items():
            # (`missing` is the count of distinct upstream steps: a set per step here made a
            # 10,000-part fan-in quadratic)
            if (len(below) == 1 and self.missing[below[0]] == 1
                    and not self.steps[below[0]].get("gated")):
                self.chain_next[step] = below[0]
        with self.wake:
            for step, missing in self.missing.items():
                if missing == 0:
                    self.queue(step)
        threading.Thread(target=self.submitter, daemon=True).start()
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

    def queue(self, step):
        """Makes `step` ready to submit (holding the lock)."""
        if step not in self.queued:
            self.queued.add(step)
            heapq.heappush(self.ready, (self.index[step], step))
            self.wake.notify()

    def submitter(self):
        """Submits steps as they become ready (every step they depend on succeeded), at most
        WINDOW at a time, earliest in plan order first, each batch as one graph.

        A released step's task has no Dask dependencies: data never goes through Dask, and a
        task with dependencies may only run where they are held (distributed's
        `decide_worker`), which piled independent steps onto the worker of their upstream.
        Without them, the scheduler gives each task to a free worker with its resources. The
        one exception is a chain link, a step whose only upstream has it as only dependent:
        it goes with its upstream, as a Dask dependency of it, so a chain moves inside the
        scheduler (a round trip through this client per step would double a chain's time)
        and nothing can pile up behind it. The window keeps the scheduler's work per message
        small whatever the job's size; nothing downstream of a failed step runs (a released
        step is never submitted, a chain link errs with its upstream and waits for a retry)."""
        while True:
            with self.wake:
                while not (self.closed.is_set() or self.canceled
                           or (self.ready and len(self.in_flight) < WINDOW)):
                    self.wake.wait(1.0)
                if self.closed.is_set() or self.canceled:
                    return
                room = WINDOW - len(self.in_flight)
                batch = []
                while self.ready and len(batch) < room:
                    step = heapq.heappop(self.ready)[1]
                    batch.append(step)
                    link = self.chain_next.get(step)
                    while link is not None and link not in self.queued and len(batch) < room:
                        self.queued.add(link)
                        batch.append(link)
                        link = self.chain_next.get(link)
                self.in_flight.update(batch)
            try:
                self.submit_batch(batch)
            except Exception as e:
                if self.closed.is_set():
                    return
                emit({"type": "fatal", "message": f"cannot submit steps: {type(e).__name__}: {e}"})
                return

    def submit_batch(self, steps):
        """Submits `steps` (plan order) as one graph: consecutive steps that ask for the same
        resources share a layer (a layer carries one resources annotation; a layer per step
        kept the scheduler's event loop busy for a minute on a 10,000-step submission)."""
        layers, layer_deps, layer_of, layer_resources, keys = {}, {}, {}, {}, []
        current, current_resources = None, None
        now = time.monotonic()
        with self.lock:
            self.batches += 1
            for step in steps:
                spec = self.steps[step]
                if step in self.futures:
                    # A key once erred or cancelled stays so in the scheduler while anyone
                    # holds it: each submission gets a key of its own.
                    self.generation[step] += 1
                key = self.key_of(step)
                task_spec = json.dumps(
                    {"step": step, "attempt": self.attempt[step], "topic": self.topic, "key": key,
                     "run_id": self.run["run_id"], "binary": self.run["binary"],
                     "shipped": self.shipped, "max_runtime": spec.get("max_runtime"),
                     "cluster_timeout": self.run.get("cluster_timeout", 40)}
                )
                # A chain link goes right after its upstream: its only Dask dependency.
                inside = [self.key_of(d) for d in spec["deps"]
                          if d not in self.succeeded and self.key_of(d) in layer_of]
                resources = spec["resources"] or None
                if current is None or resources != current_resources:
                    current, current_resources = f"{self.topic}-{self.batches}-{len(layers)}", resources
                    layers[current] = {}
                    layer_deps[current] = set()
                    layer_resources[current] = resources
                layers[current][key] = (run_step, task_spec, *inside)
                layer_of[key] = current
                layer_deps[current].update(layer_of[k] for k in inside)
                keys.append(key)
                self.waiting_since[step] = now
        hlg = {}
        for name, tasks in layers.items():
            layer_deps[name].discard(name)
            wanted = layer_resources[name]
            hlg[name] = MaterializedLayer(tasks, annotations={"resources": wanted} if wanted else None)
        futures = self.client.get(HighLevelGraph(hlg, layer_deps), keys, sync=False)
        with self.lock:
            for step, fut in zip(steps, futures):
                self.futures[step] = fut
                attempt = self.attempt[step]
                fut.add_done_callback(lambda f, s=step, a=attempt: self.on_done(s, a, f))

    def on_line(self, event):
        _, msg = event
        step, attempt = msg.get("step"), msg.get("attempt")
        worker = msg.get("worker_name", msg.get("worker"))
        head = {"type": "line", "step": step, "attempt": attempt, "worker": worker}
        for stream, line in msg.get("lines", ()):
            emit({**head, "stream": stream, "line": line})
        if "total" in msg:
            with self.lock:
                self.totals[(step, attempt)] = (worker, msg["total"])

    def settled(self, step, succeeded):
        """A submitted attempt of `step` is over: room in the window, and on success the
        steps that waited only for it become ready."""
        with self.wake:
            self.in_flight.discard(step)
            self.queued.discard(step)
            if succeeded:
                self.succeeded.add(step)
                for d in self.dependents.get(step, ()):
                    self.missing[d] -= 1
                    # (a gated step waits for the driver: what its upstream produced decides)
                    if self.missing[d] == 0 and not self.steps[d].get("gated"):
                        self.queue(d)
            self.wake.notify()

    def on_done(self, step, attempt, fut):
        if self.closed.is_set():
            return  # (closing the client cancels what is left: the run is over)
        with self.lock:
            if self.attempt.get(step) != attempt or self.futures.get(step) is not fut:
                return  # an old generation
            self.waiting_since.pop(step, None)
            worker, total = self.totals.pop((step, attempt), (None, None))
        status = fut.status
        if status == "finished":
            # (its result is only a receipt: the task's last batch of lines said the same,
            # and fetching it would cost a round trip to its worker per step)
            emit({"type": "done", "step": step, "attempt": attempt, "status": "success",
                  "worker": worker, "lines": total})
            self.settled(step, True)
            return
        self.settled(step, False)
        with self.lock:
            unfinished_upstream = any(d not in self.succeeded for d in self.steps[step]["deps"])
        if unfinished_upstream:
            # A chain link that went down with its upstream: it never ran. It goes again
            # with its upstream's retry, if there is one.
            return
        if status == "cancelled":
            with self.lock:
                ours = fut.key in self.own_cancels
            if ours:
                return  # the driver canceled, or the step found no worker
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
            status = "timeout" if getattr(exc, "timed_out", False) else "failed"
            emit({"type": "done", "step": step, "attempt": attempt, "status": status,
                  "worker": exc.worker, "lines": exc.lines, "message": str(exc),
                  "exit_code": exc.exit_code})
            return
        name = type(exc).__name__
        if name == "KilledWorker":
            emit({"type": "done", "step": step, "attempt": attempt, "status": "killed",
                  "message": f"KilledWorker: {exc}"})
            return
        emit({"type": "done", "step": step, "attempt": attempt, "status": "failed",
              "message": f"{name}: {exc}"})

    def add(self, cmd):
        """Steps the driver made while the run goes (one per mapping key of a dynamic
        output): known from now on, each submitted when the driver releases it."""
        with self.wake:
            for s in cmd["steps"]:
                step = s["step"]
                if step in self.steps:
                    continue
                self.steps[step] = s
                self.index[step] = len(self.index)
                self.attempt[step] = 1
                self.generation[step] = 0
                self.missing[step] = len({d for d in s["deps"] if d not in self.succeeded})
                for d in set(s["deps"]):
                    self.dependents.setdefault(d, []).append(step)

    def retry(self, cmd):
        step = cmd["step"]
        with self.wake:
            self.attempt[step] = cmd["attempt"]
            self.queue(step)

    def release(self, cmd):
        with self.wake:
            self.queue(cmd["step"])

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
            offers = {}  # resources (as JSON) -> whether a worker offers them
            for step, since in waiting:
                with self.lock:
                    upstream_done = all(d in self.succeeded for d in self.steps[step]["deps"])
                if not upstream_done:
                    # A chain link waits for its upstream, not for a worker: its wait starts
                    # when the upstream succeeds (a failed upstream takes it along).
                    with self.lock:
                        if step in self.waiting_since:
                            self.waiting_since[step] = now
                    continue
                need = self.steps[step]["resources"]
                wanted = json.dumps(need, sort_keys=True)
                if wanted not in offers:
                    offers[wanted] = any(all(res.get(k, 0) >= v for k, v in need.items())
                                         for res in workers.values())
                if offers[wanted]:
                    with self.lock:
                        if step in self.waiting_since:
                            self.waiting_since[step] = now
                    continue
                if now - since >= timeout:
                    with self.lock:
                        if self.waiting_since.pop(step, None) is None:
                            continue
                        fut = self.futures[step]
                        attempt = self.attempt[step]
                        self.futures[step] = None
                        self.own_cancels.add(fut.key)
                    self.client.cancel([fut], force=True)
                    self.settled(step, False)
                    if need:
                        why = f"no worker offers the resources {json.dumps(need)}"
                    else:
                        why = "the cluster has no worker"
                    emit({"type": "done", "step": step, "attempt": attempt, "status": "no_worker",
                          "message": f"{why} after waiting {timeout:g} s; workers and their "
                                     f"resources: {json.dumps(workers)}"})

    def forget_topic(self):
        """Nothing of the run stays in the scheduler: its log topic goes with it."""
        try:
            self.client.unsubscribe_topic(self.topic)
            self.client.run_on_scheduler(drop_topic, self.topic)
        except Exception as e:  # a lost scheduler keeps nothing anyway
            log(f"could not drop the run's log topic: {e}")

    def forget_run(self):
        """Nothing of the run stays on the cluster: its runners (and whatever their steps
        left running) go from every worker, its config from the workers' plugins."""
        try:
            self.client.run(stop_runners, self.run["run_id"], on_error="ignore")
        except Exception as e:
            log(f"could not stop the run's step runners: {e}")
        try:
            self.client.unregister_worker_plugin(run_plugin_name(self.run["run_id"]))
        except Exception as e:
            log(f"could not remove the run's config from the workers: {e}")

    def cancel(self):
        with self.wake:
            self.canceled = True
            self.wake.notify()
            futures = [f for f in self.futures.values() if f is not None]
            self.futures = {s: None for s in self.futures}
            self.own_cancels.update(f.key for f in futures)
        if futures:
            self.client.cancel(futures, force=True)
        emit({"type": "canceled"})

    def close(self):
        self.closed.set()
        with self.wake:
            self.wake.notify()
        try:
            if self.client is not None:
                if self.run is not None:
                    if str(self.client.status) == "running":
                        self.forget_run()
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
                elif op == "release":
                    bridge.release(cmd)
                elif op == "add":
                    bridge.add(cmd)
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
