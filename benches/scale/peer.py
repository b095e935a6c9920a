"""The peer in the scale benchmark: the same job shapes in Python dagster, run once.

usage: DAGSTER_HOME=DIR PYTHONPATH=<this dir> python peer.py SHAPE MODE [SCHEDULER]
  SHAPE: single | chain-20 | fan-50 | payload | gpu | failing
  MODE:  in_process | dask-local | dask-existing

Prints one line `PEER_RESULT {"success": bool, "value": ...}` (the sink op's output). Jobs
are module-level functions so that `reconstructable` can rebuild them on Dask workers (which
must import this module: run them with PYTHONPATH=<this dir>).
"""

import json
import sys

from dagster import (
    DagsterInstance,
    In,
    Out,
    execute_job,
    graph,
    in_process_executor,
    op,
    reconstructable,
)
from dagster_dask import dask_executor

PAYLOAD_BYTES = 10 << 20


@op
def one() -> int:
    return 1


@op
def zero() -> int:
    return 0


@op
def inc(x: int) -> int:
    return x + 1


@op
def source() -> int:
    return 1


@op(ins={"parts": In(list)})
def total(parts) -> int:
    return sum(parts)


def part(i):
    @op(name=f"part_{i}")
    def _part(one: int) -> int:
        return one * i

    return _part


@op
def make() -> bytes:
    return b"\x07" * PAYLOAD_BYTES


@op
def passthrough(b: bytes) -> bytes:
    return b


@op
def measure(b: bytes) -> int:
    return len(b)


@op(tags={"dagster-dask/resource_requirements": {"GPU": 1}})
def train() -> int:
    return 2


@op
def boom() -> int:
    raise RuntimeError("boom, as planned")


@op
def after(x: int) -> int:
    return x


@graph
def single():
    one()


@graph
def chain_20():
    v = zero()
    for i in range(1, 20):
        v = inc.alias(f"inc_{i}")(v)


PARTS = [part(i) for i in range(1, 51)]


@graph
def fan_50():
    s = source()
    total([p(s) for p in PARTS])


@graph
def payload():
    measure(passthrough(make()))


@graph
def gpu():
    train()


@graph
def failing():
    after(boom())


GRAPHS = {"single": single, "chain-20": chain_20, "fan-50": fan_50, "payload": payload,
          "gpu": gpu, "failing": failing}
SINKS = {"single": "one", "chain-20": "inc_19", "fan-50": "total", "payload": "measure",
         "gpu": "train", "failing": "after"}


def _job(shape, executor):
    return GRAPHS[shape].to_job(name=shape.replace("-", "_") + "_" + executor.name,
                                executor_def=executor)


def _define(shape, executor, name):
    def job():
        return _job(shape, executor)

    job.__name__ = job.__qualname__ = name
    return job


# reconstructable() wants module-level functions that take no argument.
for _shape in GRAPHS:
    for _executor, _suffix in ((dask_executor, "dask"), (in_process_executor, "in_process")):
        _name = f"{_shape.replace('-', '_')}__{_suffix}"
        globals()[_name] = _define(_shape, _executor, _name)


def main():
    shape, mode = sys.argv[1], sys.argv[2]
    if mode == "in_process":
        name, config = "in_process", {}
    elif mode == "dask-local":
        local = {"n_workers": 2, "threads_per_worker": 1, "dashboard_address": "127.0.0.1:0"}
        if shape == "gpu":
            local["resources"] = {"GPU": 1}
        name, config = "dask", {"execution": {"config": {"cluster": {"local": local}}}}
    else:
        name = "dask"
        config = {"execution": {"config": {"cluster": {"existing": {"address": sys.argv[3]}}}}}
    fn = globals()[f"{shape.replace('-', '_')}__{name}"]
    with DagsterInstance.get() as instance:
        with execute_job(reconstructable(fn), instance=instance, run_config=config) as result:
            value = None
            if result.success:
                value = result.output_for_node(SINKS[shape])
        print("PEER_RESULT " + json.dumps({"success": result.success, "value": value}), flush=True)


if __name__ == "__main__":
    main()
