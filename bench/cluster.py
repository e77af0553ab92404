"""The demo experiments on a 2-worker Dask LocalCluster against the local executor (2 processes).

    python bench/cluster.py [--scenario leave_one_out --scenario within ...]

In a fresh clone of HEAD: the demo corpora and their features (`dvc repro features`), then each
scenario through `crossemo experiment` with `experiments.executor: local` and with `dask` (a
LocalCluster of two one-thread worker processes started here), each with its own cold MLflow store
and stack cache. Checks that both give the same metrics. Last line: dask_over_local=<time ratio>.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml
from demo_pipeline import clone, environment

SCENARIOS = ["within", "single_source", "target_fraction", "multi_source", "leave_one_out"]
COLUMNS = ["model", "source", "target", "seed", "uar", "accuracy", "confusion"]


def run_scenarios(project: Path, executor: str, scenarios: list[str], address: str | None) -> float:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["experiments"].update(executor=executor, cache_dir=f".cache/pretrained-{executor}")
    (project / f"params-{executor}.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**environment(project), "MLFLOW_TRACKING_URI": f"sqlite:///{project}/mlruns-{executor}/mlflow.db"}
    if address:
        env["DASK_SCHEDULER_ADDRESS"] = address
    start = time.perf_counter()
    for scenario in scenarios:
        command = ["crossemo", "experiment", scenario, "--params", f"params-{executor}.yaml"]
        command += ["--out", f"results-{executor}/{scenario}.parquet"]
        subprocess.run(command, cwd=project, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def same_results(project: Path, scenarios: list[str]) -> bool:
    def table(executor: str, scenario: str) -> pd.DataFrame:
        return pd.read_parquet(project / f"results-{executor}/{scenario}.parquet")[COLUMNS]

    return all(table("local", s).equals(table("dask", s)) for s in scenarios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="default: all five")
    args = parser.parse_args()
    scenarios = args.scenario or SCENARIOS
    from distributed import LocalCluster

    with tempfile.TemporaryDirectory() as tmp:
        project = clone(Path(tmp))
        for command in (["crossemo", "demo", "generate", "data/demo"], ["dvc", "add", "-q", "data"]):
            subprocess.run(command, cwd=project, env=environment(project), check=True, capture_output=True)
        subprocess.run(
            ["dvc", "repro", "features"], cwd=project, env=environment(project), check=True, capture_output=True
        )
        local = run_scenarios(project, "local", scenarios, None)
        print(f"local executor (2 processes):     {local / 60:6.2f} min")
        os.chdir(project)  # the workers' own folder, as a cluster's would be theirs
        with LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=None, local_directory=Path(tmp) / "dask"
        ) as cluster:
            dask = run_scenarios(project, "dask", scenarios, cluster.scheduler_address)
        print(f"dask LocalCluster (2 workers):    {dask / 60:6.2f} min")
        print(f"same metrics on both: {same_results(project, scenarios)}")
    print(f"dask_over_local={dask / local:.2f}", file=sys.stdout)


if __name__ == "__main__":
    main()
