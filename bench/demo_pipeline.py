"""Demo pipeline benchmark: `dvc repro` on the embedded default in a fresh clone, timed per stage.

    python bench/demo_pipeline.py [--workers 2] [--workers 1 --workers 2] [--rev 9f31b76 --rev HEAD]

Clones a commit (HEAD by default) into a temporary folder (cold feature, pretraining and MLflow
stores), generates the synthetic demo corpora, `dvc add`s them and runs `dvc repro`, noting when
each stage starts. Each `--workers` value, and each `--rev`, gets its own fresh clone, one after the
other, so their ratios are measured in one run. Goal: the whole `dvc repro` under 4 minutes on the
2-core machine.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
GOAL_MINUTES = 4.0


def environment(project: Path) -> dict[str, str]:
    """The stages call `crossemo` and `dvc`: this interpreter's environment comes first on PATH, and
    the clone's own src/ first on PYTHONPATH. Without it the package installed in the environment
    (the working checkout, editable) would run, whatever revision the clone holds."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(project / "src"),
    }


def clone(workdir: Path, workers: int | None = None, rev: str = "HEAD") -> Path:
    project = workdir / "project"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(project)], check=True)
    commit = subprocess.run(["git", "rev-parse", rev], cwd=REPO, check=True, capture_output=True, text=True)
    subprocess.run(["git", "checkout", "--quiet", commit.stdout.strip()], cwd=project, check=True)
    if workers is not None:
        params_file = project / "params.yaml"
        params = yaml.safe_load(params_file.read_text())
        params["experiments"]["workers"] = workers
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    return project


def timed(project: Path, *command: str) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=project, env=environment(project), check=True, capture_output=True)
    return time.perf_counter() - start


def repro_by_stage(project: Path) -> tuple[dict[str, float], float]:
    """Seconds per stage, from the moments `dvc repro` announces each one, and the whole."""
    stages, current, started = {}, None, time.perf_counter()
    process = subprocess.Popen(
        ["dvc", "repro"],
        cwd=project,
        env=environment(project),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    mark = started
    for line in process.stdout:
        found = re.match(r"Running stage '([^']+)'", line)
        if found:
            now = time.perf_counter()
            if current:
                stages[current] = now - mark
            current, mark = found.group(1), now
    if process.wait() != 0:
        raise SystemExit("dvc repro failed")
    end = time.perf_counter()
    if current:
        stages[current] = end - mark
    return stages, end - started


def measure(workers: int | None, rev: str = "HEAD") -> float:
    with tempfile.TemporaryDirectory() as tmp:
        project = clone(Path(tmp), workers, rev)
        generate = timed(project, "crossemo", "demo", "generate", "data/demo")
        add = timed(project, "dvc", "add", "--quiet", "data")
        stages, total = repro_by_stage(project)
    label = "params.yaml" if workers is None else f"{workers}"
    print(f"\n{rev}, workers: {label}   demo generate {generate:.1f} s, dvc add {add:.1f} s")
    print_stages(stages, total)
    return total


def print_stages(stages: dict[str, float], total: float) -> None:
    groups: dict[str, float] = {}
    for stage, seconds in stages.items():
        groups[stage.split("@")[0]] = groups.get(stage.split("@")[0], 0.0) + seconds
        if stage.startswith("experiment") or stage == "report":
            print(f"  {stage:<28} {seconds:7.1f} s")
    for group in ("table", "features"):
        print(f"  {group + '@* (all corpora)':<28} {groups.get(group, 0.0):7.1f} s")
    print(f"  {'dvc repro':<28} {total:7.1f} s = {total / 60:.2f} min")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, action="append", help="experiments.workers (repeatable)")
    parser.add_argument("--rev", action="append", help="commit to measure (repeatable; default HEAD)")
    args = parser.parse_args()
    runs = [(rev, w) for rev in (args.rev or ["HEAD"]) for w in (args.workers or [None])]
    totals = {(rev, w): measure(w, rev) for rev, w in runs}
    if len(totals) > 1:
        base = next(iter(totals.values()))
        print(
            "speed relative to the first: "
            + ", ".join(f"{rev} workers {w}: {base / t:.2f}x" for (rev, w), t in totals.items())
        )
    last = list(totals.values())[-1] / 60
    print(f"demo_repro_minutes={last:.2f} goal={GOAL_MINUTES:g} met={last < GOAL_MINUTES}")


if __name__ == "__main__":
    main()
