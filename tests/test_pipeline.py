"""`dvc repro` end to end in a temporary copy of the project, on two small demo corpora."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from .conftest import REPO, free_port, wait_for_http

pytestmark = pytest.mark.slow


def project_env() -> dict:
    """This interpreter's commands first; the project's own MLflow store (no store inherited from a test)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def run(cwd: Path, *cmd: str) -> str:
    env = project_env()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def demo_project(root: Path) -> Path:
    """A git repo holding the project's files, its params cut to the two smallest demo corpora, and
    their synthetic audio tracked by DVC; nothing run yet."""
    for name in ("dvc.yaml", "params.yaml", "pyproject.toml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / ".dvc", root / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"))
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["corpora"] = {k: params["corpora"][k] for k in ("savee", "emovo")}
    params["features"]["cache_dir"] = str(root / ".cache")
    params["models"]["dbn_tiny"] = {
        "model": "dbn",
        "hidden": [16, 16],
        "pretrain_data": "unlabeled",
        "pretrain": {"epochs": 2, "batch_size": 128},
        "finetune": {"max_epochs": 4, "batch_size": 128},
    }
    # One worker: the stages' fits are tiny, and two worker processes would each import torch and
    # Lightning again per stage. Not a stage dependency (results do not depend on it); the killed-stage
    # test runs its stage with two, and tests/test_experiments.py compares one worker with two.
    params["experiments"].update(models=["dbn_tiny", "svm"], seeds=[0, 1], log_models=False, workers=1)
    params["experiments"]["within"]["speaker_folds"] = 2
    params["experiments"]["target_fraction"]["fractions"] = [0.5]
    params["experiments"]["transfer"].update(train_corpora=["savee"], test_corpora=["emovo"])
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(root, "git", "init", "-q")
    run(root, "crossemo", "demo", "generate", "data/demo")
    run(root, "dvc", "add", "-q", "data")
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The demo project after `dvc repro`."""
    root = demo_project(tmp_path_factory.mktemp("project"))
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
    assert set(detail) == {"within", "single_source", "target_fraction", "leave_one_out", "transfer"}
    assert pd.read_parquet(project / "results/multi_source.parquet").empty
    entry = detail["within"]["random"]["dbn_tiny"]["savee->savee"]
    assert entry["seeds"] == 2 and entry["uar_ci95_low"] <= entry["uar_mean"] <= entry["uar_ci95_high"]
    within = pd.read_parquet(project / "results/within.parquet")
    cell = within.query("protocol == 'random' and model == 'dbn_tiny' and target == 'savee'")
    assert len(cell) == 2 and entry["uar_mean"] == pytest.approx(cell["uar"].mean(), abs=1e-4)  # its two seeds
    assert "savee->emovo" in detail["single_source"]["single_source"]["svm"]
    assert set(detail["transfer"]) == {"audio_unseen", "audio_statistics", "audio_used"}  # params.yaml's three ways
    assert "savee->emovo" in detail["transfer"]["audio_unseen"]["dbn_tiny"]
    # `dvc metrics show` reads the headline file only: a few numbers per scenario and model
    shown = json.loads(run(project, "dvc", "metrics", "show", "--json"))
    headline = shown[""]["data"]["reports/metrics.json"]["data"]
    assert set(headline) == set(detail) and set(headline["within"]) == {"dbn_tiny", "svm", "best_vs_svm_uar"}
    assert "uar_mean" not in json.dumps(shown)
    assert (project / "reports/figures/fig1_within.png").stat().st_size > 1000
    assert "| emovo | 76.22 |" in (project / "reports/report.md").read_text()


def test_same_seed_same_metrics_on_the_demo_corpora(project):
    run(project, "crossemo", "experiment", "within", "--out", "again.parquet")
    # byte for byte: otherwise a fresh clone's `dvc repro` rewrites dvc.lock (and `make demo` leaves git dirty)
    assert (project / "again.parquet").read_bytes() == (project / "results/within.parquet").read_bytes()
    first = pd.read_parquet(project / "results/within.parquet")
    again = pd.read_parquet(project / "again.parquet")
    columns = ["model", "target", "protocol", "seed", "fold", "accuracy", "uar", "macro_f1"]
    pd.testing.assert_frame_equal(first[columns], again[columns])


def test_second_repro_does_nothing_and_status_is_clean(project):
    out = run(project, "dvc", "repro")
    assert "Running stage" not in out
    assert "up to date" in run(project, "dvc", "status")


def test_changing_one_corpus_setting_reruns_that_corpus_alone(project):
    original = (project / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["corpora"]["savee"]["valence"] = {"negative": ["anger"], "positive": ["neutral"]}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = run(project, "dvc", "status")
    assert "table@savee" in status and "emovo" not in status
    out = run(project, "dvc", "repro", "features")  # the corpus stages; the experiments would follow in full
    assert "Running stage 'table@savee'" in out and "Running stage 'table@emovo'" not in out
    assert "Running stage 'features@emovo'" not in out
    assert set(pd.read_parquet(project / "features/savee.parquet")["valence"]) == {"negative", "positive", "excluded"}
    # Back to the original setting: the savee stages come back from DVC's run cache, and the
    # experiments, whose inputs are then the same again, stay up to date.
    (project / "params.yaml").write_text(original)
    run(project, "dvc", "repro", "features")
    assert "up to date" in run(project, "dvc", "status")


def test_a_stage_killed_midway_leaves_no_partial_results_nor_running_runs_and_reruns_the_same(project):
    before = pd.read_parquet(project / "results/leave_one_out.parquet")
    original = (project / "params.yaml").read_text()
    killed = yaml.safe_load(original)
    killed["experiments"]["workers"] = 2  # worker processes too must close their runs when killed
    for name in ("dbn_demo", "mlp_demo"):  # fits long enough that the kill lands mid-stage: the demo's
        killed["models"][name]["finetune"].update(min_epochs=3000, max_epochs=3000)  # own once all ended first
    (project / "params.yaml").write_text(yaml.safe_dump(killed, sort_keys=False))
    process = subprocess.Popen(
        ["dvc", "repro", "-f", "experiment@leave_one_out"],
        cwd=project,
        env=project_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    mlflow.set_tracking_uri(f"sqlite:///{project}/mlruns/mlflow.db")
    started = time.time()
    seen = len(mlflow.search_runs(experiment_names=["crossemo-leave_one_out"]))
    while len(mlflow.search_runs(experiment_names=["crossemo-leave_one_out"])) < seen + 3:  # parent + some runs
        assert process.poll() is None and time.time() - started < 300, "the stage ended before it could be killed"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGTERM)  # as a CI time-out or a scheduler would: the whole process group
    process.wait(timeout=120)
    deadline = time.time() + 120
    while time.time() < deadline:  # dvc exits at once; its stage process closes its runs, then exits
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the stage's processes did not exit within 120 s of SIGTERM")
    partial = project / "results/leave_one_out.parquet"
    assert not partial.exists() or pd.read_parquet(partial).equals(before)
    runs = mlflow.search_runs(experiment_names=["crossemo-leave_one_out"])
    assert not (runs["status"] == "RUNNING").any()
    assert (runs["status"] == "KILLED").any()
    (project / "params.yaml").write_text(original)
    run(project, "dvc", "repro")
    after = pd.read_parquet(partial)
    columns = ["model", "source", "target", "seed", "accuracy", "uar", "macro_f1", "confusion"]
    pd.testing.assert_frame_equal(before[columns], after[columns])
    assert "up to date" in run(project, "dvc", "status")


def _leaves(tree) -> int:
    return sum(_leaves(v) for v in tree.values()) if isinstance(tree, dict) else 1


def test_dvc_exp_run_compares_headline_metrics_and_names_its_mlflow_runs(project):
    """The DVC loop: commit a baseline, `dvc exp run -S`, then the experiment's row in `dvc exp show`
    holds the changed parameter and the headline metrics, and its MLflow parent run carries its name."""
    run(project, "git", "add", "-A")
    run(project, "git", "-c", "user.name=crossemo", "-c", "user.email=ci@localhost", "commit", "-qm", "baseline")
    commands = doc_commands("docs/tutorials/experiments.md", "Run one and compare it")  # the tutorial, as written
    assert [c.split()[:3] for c in commands] == [
        ["dvc", "exp", "run"],
        ["dvc", "exp", "show"],
        ["dvc", "metrics", "diff"],
    ]
    outputs = [run(project, *shlex.split(command)) for command in commands]
    assert "quarter-target" in outputs[1]
    baselines = json.loads(run(project, "dvc", "exp", "show", "--json"))
    [experiment] = [
        r for b in baselines for e in (b.get("experiments") or []) for r in e["revs"] if r["name"] == "quarter-target"
    ]
    data = experiment["data"]
    assert data["params"]["params.yaml"]["data"]["experiments"]["target_fraction"]["fractions"] == [0.25]
    headline = data["metrics"]["reports/metrics.json"]["data"]
    assert set(data["metrics"]) == {"reports/metrics.json"}  # the detail is not a DVC metric
    assert "best_vs_svm_uar" in headline["within"]
    assert _leaves(headline) <= 60
    detail = json.loads((project / "reports/metrics_detail.json").read_text())
    cells = detail["target_fraction"]["target_fraction"]["svm"]
    assert list(cells) == ["emovo->savee@0.25", "savee->emovo@0.25"]
    mean_of_cells = sum(c["uar_mean"] for c in cells.values()) / 2  # the headline: the mean over the scenario's cells
    assert headline["target_fraction"]["svm"]["uar"] == pytest.approx(mean_of_cells, abs=1e-3)
    mlflow.set_tracking_uri(f"sqlite:///{project}/mlruns/mlflow.db")
    runs = mlflow.search_runs(
        experiment_names=["crossemo-target_fraction"], filter_string="tags.dvc_experiment = 'quarter-target'"
    )
    parent = runs[runs["tags.mlflow.parentRunId"].isna()]
    assert len(parent) == 1 and len(runs) > 1  # the parent and its nested runs all carry the name
    assert parent["tags.git_commit"].item().startswith(run(project, "git", "rev-parse", "HEAD").strip())


def doc_commands(page: str, section: str) -> list[str]:
    """The commands of the first bash block under a heading of a page (README.md, docs/...), comments stripped."""
    text = (REPO / page).read_text()
    block = text[text.index(f"## {section}") :].split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.strip().splitlines() if line.strip()]


def test_the_readmes_tour_is_the_tested_tutorials_commands():
    """The README's tour runs nothing that a test does not run as written."""
    tour = doc_commands("README.md", "A five-minute tour")
    tested = doc_commands("docs/tutorials/tuning.md", "Tuning, registry and serving")
    assert tour[0].startswith("mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db")  # test_mlflow_ui's store
    assert set(tour[1:]) <= set(tested) and len(tour) == 5


def _serve_until_answered(project: Path, command: list[str], url: str) -> subprocess.Popen:
    log = project / f"{command[0]}.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=project, env=project_env(), stdout=out, stderr=subprocess.STDOUT)
    wait_for_http(url, process, timeout=180, log=log)
    return process


def test_the_tuning_tutorials_commands_work_as_written(project):
    import requests

    from crossemo.data.features import feature_names

    from .conftest import tone

    commands = doc_commands("docs/tutorials/tuning.md", "Tuning, registry and serving")
    assert [c.split()[:2] for c in commands] == [
        ["crossemo", "tune"],
        ["crossemo", "tune"],
        ["optuna-dashboard", "sqlite:///.cache/optuna.db"],
        ["crossemo", "register"],
        ["crossemo", "serve"],
        ["crossemo", "predict"],
        ["crossemo", "predict"],
        ["crossemo", "evaluate"],
    ]
    params = yaml.safe_load((project / "params.yaml").read_text())  # a short budget on this project's corpora
    params["tuning"].update(corpora=["savee", "emovo"], n_trials=2, finetune_max_epochs=3)
    params["tuning"]["space"].update(layers=[1, 1], units=[8, 16], pretrain_epochs=[1, 2], batch_size=[64])
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    tone(project / "a.wav", seconds=1.0), tone(project / "b.wav", seconds=1.2, f0=220)
    (project / "recordings").mkdir()
    tone(project / "recordings" / "c.wav", seconds=0.9, f0=140)
    for command in commands:
        words = command.split()
        if words[0] == "optuna-dashboard":
            port = free_port()
            server = _serve_until_answered(project, [*words, "--port", str(port)], f"http://127.0.0.1:{port}/")
            server.terminate(), server.wait(timeout=30)
        elif words[:2] == ["crossemo", "serve"]:
            port = free_port()
            server = _serve_until_answered(project, [*words, "--port", str(port)], f"http://127.0.0.1:{port}/ping")
            row = pd.read_parquet(project / "features/savee.parquet")[feature_names()].head(1).astype(float)
            answer = requests.post(
                f"http://127.0.0.1:{port}/invocations", timeout=60, json={"dataframe_records": row.to_dict("records")}
            )
            server.terminate(), server.wait(timeout=30)
            assert answer.status_code == 200, answer.text
            assert answer.json()["predictions"][0]["valence"] in {"negative", "positive"}
        else:
            out = run(project, *words)
            if words[1] == "register":
                assert "registered crossemo-valence v" in out and "SYNTHETIC" in out
            if words[1] == "predict":
                assert "files scored; 0 failed" in out
            if words[1] == "evaluate":  # a row per corpus with its size, as the features stage counted it
                for corpus in ("emovo", "savee"):
                    rows = len(pd.read_parquet(project / f"features/{corpus}.parquet"))
                    assert f"| {corpus} | {rows} |" in out
    assert (project / "tuning/best_params.yaml").is_file() and (project / "valence.csv").is_file()


def test_the_own_corpus_tutorial_works_as_written(project):
    """docs/tutorials/own-corpus.md: its params entry and commands, run as written, on a corpus of 24
    recordings described by a manifest with common spellings and a mapped word."""
    import requests

    from .conftest import tone

    page = (REPO / "docs/tutorials/own-corpus.md").read_text()
    entry = yaml.safe_load(page.split("```yaml", 1)[1].split("```", 1)[0])
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["corpora"].update(entry["corpora"])
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (project / "recordings" / "clips").mkdir(parents=True)
    rows, words = ["path,emotion,speaker,language"], ["angry", "neutral", "sad", "happy", "furious", "calm"]
    for i in range(24):
        tone(project / "recordings" / "clips" / f"u{i}.wav", seconds=0.8, f0=120 + 7 * i, seed=i)
        rows.append(f"clips/u{i}.wav,{words[i % 6]},s{i % 3},dutch")
    (project / "recordings" / "manifest.csv").write_text("\n".join(rows) + "\n")
    commands = doc_commands("docs/tutorials/own-corpus.md", "3. Check, extract, evaluate, register, serve")
    assert [c.split()[:2] for c in commands][:2] == [["crossemo", "corpora"], ["dvc", "repro"]]
    for command in commands:
        words_ = command.split()
        if words_[:2] == ["crossemo", "serve"]:
            port = free_port()
            server = _serve_until_answered(project, [*words_, "--port", str(port)], f"http://127.0.0.1:{port}/ping")
            page_ok = requests.get(f"http://127.0.0.1:{port}/", timeout=30).status_code
            server.terminate(), server.wait(timeout=30)
            assert page_ok == 200
            continue
        out = run(project, *words_)
        if words_[1] == "corpora":
            assert "24 utterances, 3 speakers" in out and "anger" in out  # furious read as anger
        if words_[1] == "evaluate":
            assert "| mine | 24 |" in out
        if words_[1] == "register":
            assert "registered crossemo-valence v" in out
    assert len(pd.read_parquet(project / "features/mine.parquet")) == 24
