"""What a user sees in `mlflow ui`, in a real headless Chromium: a crossemo experiment opens on its runs table."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from crossemo.experiments.runner import ExperimentSettings, Runner

from .conftest import feature_table, free_port, wait_for_http

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium")
MODELS = {"svm": {"model": "svm"}}


def rendered(url: str, profile: Path, screenshot: Path | None = None) -> str:
    """The page's DOM after its scripts ran, as headless Chromium renders it (and a screenshot of it)."""
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1600,1000",
        "--virtual-time-budget=20000",
        "--dump-dom",
        url,
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout
    if screenshot is not None:  # a second rendering: --dump-dom and --screenshot do not combine
        shot = [c for c in command if c != "--dump-dom"][:-1] + [f"--screenshot={screenshot}", url]
        subprocess.run(shot, capture_output=True, timeout=120)
    return dom


@pytest.fixture
def ui(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = f"sqlite:///{tmp_path}/mlflow.db"
    settings = ExperimentSettings(models=("svm",), seeds=(0,), tracking_uri=store)
    Runner("leave_one_out", feature_table(), MODELS, settings, progress=False).run()
    port = free_port()
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen(
        [str(mlflow_cli), "ui", "--backend-store-uri", store, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url, server, timeout=120)
    mlflow.set_tracking_uri(store)
    yield url, mlflow.get_experiment_by_name("crossemo-leave_one_out").experiment_id
    server.terminate()
    server.wait(timeout=30)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_a_crossemo_experiment_opens_on_its_runs_table_in_model_training_view(ui, tmp_path):
    url, experiment_id = ui
    shots = Path(os.environ.get("CROSSEMO_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / ".cache"))
    shots.mkdir(parents=True, exist_ok=True)  # the runs table, as the documentation shows it
    screenshot = shots / "mlflow-runs.png"
    page = rendered(
        f"{url}/#/experiments/{experiment_id}?workflowType=machine_learning", tmp_path / "profile", screenshot
    )
    assert screenshot.stat().st_size > 10_000
    assert ">Runs<" in page and "matching runs" in page  # the runs table, not the GenAI overview
    assert "leave_one_out" in page  # the scenario's parent run is a row
    assert "No data available" not in page
