"""Where units run on this machine: worker processes started ahead of the first units."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = """
import json, os, sys
from crossemo.config import ExperimentSettings
from crossemo.executors import _starting, run_units, start_workers

settings = ExperimentSettings(models=("svm",), workers={workers})
start_workers(settings)
started = len(_starting)
# defined here, so pickled by value: running it imports nothing of crossemo's
probe = lambda context, unit: [(os.getpid(), "crossemo.experiments" in sys.modules)]
seen = [row for rows in run_units(probe, None, list(range(6)), settings) for row in rows]
here = "crossemo.experiments" in sys.modules
print(json.dumps({{"started": started, "seen": seen, "here": here, "pid": os.getpid()}}))
"""


def run_fresh(workers: int) -> dict:
    """In a new interpreter: no worker process is left over from another test."""
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(workers=workers)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_workers_started_ahead_have_imported_the_experiments_when_the_units_come():
    two = run_fresh(workers=2)
    assert two["started"] == 1 and not two["here"]  # this process imported nothing heavy meanwhile
    pids = {pid for pid, _ in two["seen"]}
    assert two["pid"] not in pids and len(two["seen"]) == 6
    assert all(imported for _, imported in two["seen"])  # the same processes the start-up prepared
    one = run_fresh(workers=1)  # one worker is this process: nothing to start
    assert one["started"] == 0 and {pid for pid, _ in one["seen"]} == {one["pid"]}
