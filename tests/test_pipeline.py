"""`dvc repro` end to end in a temporary copy of the project, on two small demo corpora."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

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
    metrics = json.loads((project / "reports/metrics.json").read_text())
    # two corpora: no set of two other-language sources exists, so multi-source is empty and says so
    assert set(metrics) == {"within", "single_source", "target_fraction", "leave_one_out"}
    assert pd.read_parquet(project / "results/multi_source.parquet").empty
    entry = metrics["within"]["random"]["dbn_tiny"]["savee->savee"]
    assert entry["seeds"] == 2 and 0 <= entry["uar_ci95_low"] <= entry["uar_mean"] <= entry["uar_ci95_high"] <= 1
    assert "savee->emovo" in metrics["single_source"]["single_source"]["svm"]
    shown = run(project, "dvc", "metrics", "show")
    assert "uar_mean" in shown and "within" in shown
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
