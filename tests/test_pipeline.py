"""`dvc repro` end to end in a temporary copy of the project, on two small demo corpora."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from .conftest import REPO

pytestmark = pytest.mark.slow


def run(cwd: Path, *cmd: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A git repo holding the project's files, its params cut to the two smallest demo corpora."""
    root = tmp_path_factory.mktemp("project")
    for name in ("dvc.yaml", "params.yaml", "pyproject.toml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / ".dvc", root / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"))
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["corpora"] = {k: params["corpora"][k] for k in ("savee", "emovo")}
    params["features"]["cache_dir"] = str(root / ".cache")
    params["models"]["dbn_tiny"] = {"model": "dbn", "hidden": [16, 16], "pretrain_data": "unlabeled",
                                    "pretrain": {"epochs": 2, "batch_size": 128},
                                    "finetune": {"max_epochs": 4, "batch_size": 128}}
    params["experiments"].update(models=["dbn_tiny", "svm"], seeds=[0, 1], log_models=False)
    params["experiments"]["within"]["speaker_folds"] = 2
    params["experiments"]["target_fraction"]["fractions"] = [0.5]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(root, "git", "init", "-q")
    run(root, "crossemo", "demo", "generate", "data/demo")
    run(root, "dvc", "add", "-q", "data")
    run(root, "dvc", "repro")
    return root


def test_repro_writes_one_feature_table_per_corpus(project):
    for name in ("savee", "emovo"):
        table = pd.read_parquet(project / f"features/{name}.parquet")
        assert {"corpus", "speaker", "valence", "loudness_sma3_amean"} <= set(table.columns)
        assert table.shape[1] - len(pd.read_parquet(project / f"tables/{name}.parquet").columns) == 88
        assert table.filter(like="_sma3").notna().all().all()


def test_experiments_and_report_come_out_of_dvc_repro(project):
    detail = json.loads((project / "reports/metrics_detail.json").read_text())
    # two corpora: no set of two other-language sources exists, so multi-source is empty and says so
    assert set(detail) == {"within", "single_source", "target_fraction", "leave_one_out"}
    assert pd.read_parquet(project / "results/multi_source.parquet").empty
    entry = detail["within"]["random"]["dbn_tiny"]["savee->savee"]
    assert entry["seeds"] == 2 and 0 <= entry["uar_ci95_low"] <= entry["uar_mean"] <= entry["uar_ci95_high"] <= 1
    assert "savee->emovo" in detail["single_source"]["single_source"]["svm"]
    # `dvc metrics show` reads the headline file only: a few numbers per scenario and model
    shown = json.loads(run(project, "dvc", "metrics", "show", "--json"))
    headline = shown[""]["data"]["reports/metrics.json"]["data"]
    assert set(headline) == set(detail) and set(headline["within"]) == {"dbn_tiny", "svm", "best_vs_svm_uar"}
    assert "uar_mean" not in json.dumps(shown)
    assert (project / "reports/figures/fig1_within.png").stat().st_size > 1000
    assert "| emovo | 76.22 |" in (project / "reports/report.md").read_text()


def test_same_seed_same_metrics_on_the_demo_corpora(project):
    run(project, "crossemo", "experiment", "within", "--out", "again.parquet")
    first = pd.read_parquet(project / "results/within.parquet")
    again = pd.read_parquet(project / "again.parquet")
    columns = ["model", "target", "protocol", "seed", "fold", "accuracy", "uar", "macro_f1"]
    pd.testing.assert_frame_equal(first[columns], again[columns])


def test_second_repro_does_nothing_and_status_is_clean(project):
    out = run(project, "dvc", "repro")
    assert "Running stage" not in out
    assert "up to date" in run(project, "dvc", "status")


def test_changing_one_corpus_setting_reruns_that_corpus_alone(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["corpora"]["savee"]["valence"] = {"negative": ["anger"], "positive": ["neutral"]}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = run(project, "dvc", "status")
    assert "table@savee" in status and "emovo" not in status
    out = run(project, "dvc", "repro")
    assert "Running stage 'table@savee'" in out and "Running stage 'table@emovo'" not in out
    assert "Running stage 'features@emovo'" not in out
    assert set(pd.read_parquet(project / "features/savee.parquet")["valence"]) == {"negative", "positive", "excluded"}


def _leaves(tree) -> int:
    return sum(_leaves(v) for v in tree.values()) if isinstance(tree, dict) else 1


def test_dvc_exp_run_compares_headline_metrics_and_names_its_mlflow_runs(project):
    """The DVC loop: commit a baseline, `dvc exp run -S`, then the experiment's row in `dvc exp show`
    holds the changed parameter and the headline metrics, and its MLflow parent run carries its name."""
    run(project, "git", "add", "-A")
    run(project, "git", "-c", "user.name=crossemo", "-c", "user.email=ci@localhost", "commit", "-qm", "baseline")
    run(project, "dvc", "exp", "run", "-n", "quarter-target", "-S", "experiments.target_fraction.fractions=[0.25]")
    baselines = json.loads(run(project, "dvc", "exp", "show", "--json"))
    [experiment] = [r for b in baselines for e in (b.get("experiments") or []) for r in e["revs"]
                    if r["name"] == "quarter-target"]
    data = experiment["data"]
    assert data["params"]["params.yaml"]["data"]["experiments"]["target_fraction"]["fractions"] == [0.25]
    headline = data["metrics"]["reports/metrics.json"]["data"]
    assert set(data["metrics"]) == {"reports/metrics.json"}  # the detail is not a DVC metric
    assert 0 <= headline["target_fraction"]["svm"]["uar"] <= 1 and "best_vs_svm_uar" in headline["within"]
    assert _leaves(headline) <= 60
    detail = json.loads((project / "reports/metrics_detail.json").read_text())
    assert list(detail["target_fraction"]["target_fraction"]["svm"]) == ["emovo->savee@0.25", "savee->emovo@0.25"]
    mlflow.set_tracking_uri(f"sqlite:///{project}/mlruns/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["crossemo-target_fraction"],
                              filter_string="tags.dvc_experiment = 'quarter-target'")
    parent = runs[runs["tags.mlflow.parentRunId"].isna()]
    assert len(parent) == 1 and len(runs) > 1  # the parent and its nested runs all carry the name
    assert parent["tags.git_commit"].item().startswith(run(project, "git", "rev-parse", "HEAD").strip())
