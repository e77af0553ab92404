"""Where a scenario's units of work run: worker processes on this machine, or an existing Dask cluster.

Each unit is seeded and carries everything it needs (features, labels, settings, the MLflow parent
run), so the results do not depend on where, or how many times, it ran. On Dask, workers need the
installed package, not the checkout: the context travels with the tasks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from joblib import Parallel, delayed

from crossemo.errors import ConfigError
from crossemo.experiments.settings import Executor, ExperimentSettings

SCHEDULER_VARIABLE = "DASK_SCHEDULER_ADDRESS"


def run_units(function: Callable, context: Any, units: list, settings: ExperimentSettings) -> Iterator[list]:
    """`function(context, unit)` for every unit, yielded as each finishes (in no set order)."""
    if settings.executor is Executor.DASK:
        return _on_dask(function, context, units, scheduler_address(settings))
    return _on_this_machine(function, context, units, settings.workers)


def scheduler_address(settings: ExperimentSettings) -> str:
    address = settings.scheduler_address or os.environ.get(SCHEDULER_VARIABLE)
    if not address:
        raise ConfigError(
            f"experiments.executor is dask but no scheduler is named: set experiments.scheduler_address "
            f"or {SCHEDULER_VARIABLE} (e.g. tcp://10.0.0.5:8786)"
        )
    return address


def _on_this_machine(function: Callable, context: Any, units: list, workers: int) -> Iterator[list]:
    # One worker runs in this process (no pickling, the parent run stays the active one); more run
    # in loky processes, each writing its own nested runs under the parent's id.
    parallel = Parallel(n_jobs=workers, return_as="generator_unordered")
    yield from parallel(delayed(function)(context, unit) for unit in units)


def _on_dask(function: Callable, context: Any, units: list, address: str) -> Iterator[list]:
    from distributed import Client, as_completed

    with Client(address, set_as_default=False) as client:
        _check_single_threaded(client)
        # The context as a task of its own: sent once, and recomputed from the graph if the only
        # worker holding it dies (scattered data would be lost with it). A unit whose worker dies
        # is run again on another (the scheduler's allowed-failures); its rows come from that run.
        shared = client.submit(_same, context, pure=False)
        pending = as_completed([client.submit(function, shared, unit, pure=False) for unit in units], loop=client.loop)
        for future in pending:
            rows = future.result()
            future.release()  # taken: a worker that dies later must not make the cluster compute it again
            yield rows


def _same(value):
    return value


def _check_single_threaded(client) -> None:
    """Fits seed the process-wide random generators (Lightning's seed_everything): two fits in two
    threads of one worker process would draw from each other's streams."""
    threaded = {worker: n for worker, n in client.nthreads().items() if n != 1}
    if threaded:
        raise ConfigError(
            f"Dask workers {sorted(threaded)} run {sorted(set(threaded.values()))} threads: start each worker "
            "with one thread (`dask worker SCHEDULER --nthreads 1 --nworkers N`), since seeded fits share "
            "their process' random generators"
        )
