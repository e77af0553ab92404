"""How busy the experiment workers were in a finished study: per stage, from its MLflow runs.

    python bench/idle_workers.py PROJECT [--workers 2] [--earliest]

PROJECT is a project whose mlruns/ holds a study (e.g. `python bench/study.py --keep DIR` leaves
DIR/project); each scenario's latest parent run is read (its earliest with --earliest, for a
project where stages were rerun after the study). Per stage: its wall seconds, the
worker-seconds spent inside runs (fits, pretraining warm-ups, evaluation, logging), and the idle
worker-seconds: moments when fewer than `workers` runs were open, split into the many short gaps
between one run and the next (under a second: dispatch, run creation) and the long ones (a worker
starting or restarting, waiting on a stack's lock, or the stage's last fits running alone).
Last line: idle_fraction=<idle worker-seconds / (wall seconds x workers), all stages>.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mlflow
import pandas as pd


def stage_runs(project: Path, earliest: bool = False) -> dict[str, tuple[pd.Series, pd.DataFrame]]:
    """Each scenario's latest (or earliest) parent run and its finished children."""
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlruns/mlflow.db'}")
    found = {}
    for experiment in mlflow.search_experiments():
        if not experiment.name.startswith("crossemo-") or experiment.name == "crossemo-pretrained-stacks":
            continue
        runs = mlflow.search_runs([experiment.experiment_id], order_by=["start_time DESC"])
        parents = runs[runs["tags.mlflow.parentRunId"].isna()]
        if parents.empty:
            continue
        parent = parents.iloc[-1 if earliest else 0]
        children = runs[(runs["tags.mlflow.parentRunId"] == parent["run_id"]) & runs["end_time"].notna()]
        found[experiment.name.removeprefix("crossemo-")] = (parent, children)
    return found


def idle(parent: pd.Series, children: pd.DataFrame, workers: int) -> dict[str, float]:
    begin, end = parent["start_time"], parent["end_time"]
    events = sorted([(t, 1) for t in children["start_time"]] + [(t, -1) for t in children["end_time"]])
    open_runs, last, short, long = 0, begin, 0.0, 0.0
    for moment, change in [*events, (end, 0)]:
        gap = (moment - last).total_seconds() * max(workers - open_runs, 0)
        if gap and (moment - last).total_seconds() < 1:
            short += gap
        else:
            long += gap
        open_runs, last = open_runs + change, moment
    busy = (children["end_time"] - children["start_time"]).dt.total_seconds().sum()
    return {"wall_s": (end - begin).total_seconds(), "busy_worker_s": busy, "idle_short_s": short, "idle_long_s": long}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("project", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--earliest", action="store_true")
    args = parser.parse_args()
    table = pd.DataFrame(
        {
            stage: idle(parent, children, args.workers)
            for stage, (parent, children) in stage_runs(args.project, args.earliest).items()
        }
    ).T.sort_values("wall_s", ascending=False)
    table.loc["all"] = table.sum()
    print(table.round(1).to_markdown())
    total = table.loc["all"]
    print(f"idle_fraction={(total['idle_short_s'] + total['idle_long_s']) / (total['wall_s'] * args.workers):.3f}")


if __name__ == "__main__":
    main()
