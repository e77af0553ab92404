"""The whole study, timed: the demo pipeline and the real-corpora study (`make real`), cold caches.

    python bench/study.py [--rev HEAD] [--skip-demo] [--skip-real] [--corpora ../shared/corpora] [--keep DIR]
                          [--models dbn_paper,mlp_paper,svm,sae_svm] [--then-add dbn_best_svm]

Each part runs in a fresh clone of the commit (empty feature, pretraining and MLflow stores):
  demo: `crossemo demo generate`, `dvc add data`, `dvc repro` (as bench/demo_pipeline.py);
  real: `make real`'s steps: `crossemo corpora import CORPORA data/real`, `crossemo params use
        params.real.yaml`, `dvc add data`, `dvc repro` (features of about 2,000 files included).
--models runs the real study with these configurations instead of params.real.yaml's list (e.g. the
four of the grid before dbn_best and svm_cv joined it). --then-add MODEL then adds one configuration
to the study's models in the same project and times `dvc repro` again: every stage reruns, and the
other models' fits are reused from the first run's MLflow store (experiments.reuse_fits).
--keep DIR runs the real part in DIR/project and leaves it there (results/, reports/, mlruns/ for
`crossemo report` and `crossemo compare`); DIR must not hold a project yet.
Per-stage seconds are printed as each part ends. Goals on the 2-core machine: demo under 4 minutes,
real under 40. Last line: demo_minutes=<m> real_minutes=<m> (n/a for a skipped part), then
real_add_model_minutes=<m> with --then-add.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path

import yaml
from demo_pipeline import clone, print_stages, repro_by_stage, timed

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
GOALS = {"demo": 4.0, "real": 40.0}


def demo(rev: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        project = clone(Path(tmp), rev=rev)
        prepare = timed(project, "crossemo", "demo", "generate", "data/demo")
        prepare += timed(project, "dvc", "add", "--quiet", "data")
        stages, total = repro_by_stage(project)
    print(f"\ndemo ({rev}): generate + dvc add {prepare:.1f} s")
    print_stages(stages, total)
    return total


def real(
    rev: str, corpora: Path, keep: Path | None = None, models: list[str] | None = None, then_add: str | None = None
) -> tuple[float, float | None]:
    """Seconds of the cold `dvc repro`, and of the rerun after adding `then_add` to the models (or None)."""
    workdir = contextlib.nullcontext(str(keep)) if keep else tempfile.TemporaryDirectory()
    with workdir as tmp:
        project = clone(Path(tmp), rev=rev)
        prepare = timed(project, "crossemo", "corpora", "import", str(corpora), "data/real")
        prepare += timed(project, "crossemo", "params", "use", "params.real.yaml")
        if models:
            set_models(project, models)
        prepare += timed(project, "dvc", "add", "--quiet", "data")
        stages, total = repro_by_stage(project)
        print(f"\nreal corpora ({rev}, models {', '.join(models) if models else 'of params.real.yaml'}):")
        print(f"import + params + dvc add {prepare:.1f} s")
        print_stages(stages, total)
        if not then_add:
            return total, None
        set_models(project, [*experiment_models(project), then_add])
        stages, rerun = repro_by_stage(project)  # every stage again; the other models' fits are reused
        print(f"\nthe same project with {then_add} added to the models:")
        print_stages(stages, rerun)
        return total, rerun


def experiment_models(project: Path) -> list[str]:
    return yaml.safe_load((project / "params.yaml").read_text())["experiments"]["models"]


def set_models(project: Path, models: list[str]) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["experiments"]["models"] = models
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="HEAD")
    parser.add_argument("--corpora", type=Path, default=CORPORA)
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--keep", type=Path, help="run the real part in this folder and keep it")
    parser.add_argument("--models", type=lambda text: text.split(","), help="configurations, comma-separated")
    parser.add_argument("--then-add", metavar="MODEL", help="then add this configuration and time the rerun")
    args = parser.parse_args()
    minutes = {"demo": None, "real": None}
    if not args.skip_demo:
        minutes["demo"] = demo(args.rev) / 60
    if not args.skip_real:
        if not (args.corpora / "emodb").is_dir():
            raise SystemExit(f"no real corpora at {args.corpora}: pass --corpora or --skip-real")
        if args.keep and (args.keep / "project").exists():
            raise SystemExit(f"{args.keep / 'project'} exists: pass another --keep folder")
        cold, rerun = real(args.rev, args.corpora.resolve(), args.keep, args.models, args.then_add)
        minutes["real"] = cold / 60
        if rerun is not None:
            minutes["real_add_model"] = rerun / 60
    for part, value in minutes.items():
        if value is not None and part in GOALS:
            print(f"{part}: {value:.1f} min (goal < {GOALS[part]:g}: {'met' if value < GOALS[part] else 'not met'})")
    print(" ".join(f"{part}_minutes={'n/a' if v is None else f'{v:.1f}'}" for part, v in minutes.items()))


if __name__ == "__main__":
    main()
