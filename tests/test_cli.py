"""The command line: a user's mistake is one actionable line, a bug keeps its traceback; `params use`; metrics."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from crossemo.cli import main
from crossemo.experiments.metrics import valence_scores

from .conftest import REPO


def crossemo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crossemo.cli", *args], cwd=cwd, capture_output=True, text=True)


def test_a_users_mistake_is_one_line_naming_the_key(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["experiments"]["normalization"] = "per-utterance"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "features").mkdir()
    done = crossemo("experiment", "within", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: experiments.normalization is 'per-utterance'; use one of train, corpus, speaker"
    ]
    params["experiments"]["normalisation"] = params["experiments"].pop("normalization")  # a typo'd key
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    done = crossemo("experiment", "within", cwd=tmp_path)
    assert done.returncode == 1 and "unexpected keyword argument 'normalisation'" in done.stderr
    assert "Traceback" not in done.stderr
    done = crossemo("table", "nope", cwd=tmp_path)
    assert done.stderr.strip() == (
        "error: corpus 'nope' is not in params.yaml's corpora: " + ", ".join(params["corpora"])
    )


def test_a_bug_keeps_its_traceback_and_verbose_shows_a_users_too(monkeypatch, capsys):
    from crossemo.errors import ConfigError
    from crossemo.stages import run_guarded

    def buggy(args):
        return {}["valence"]  # an internal KeyError: not the user's to fix

    with pytest.raises(KeyError, match="valence"):
        run_guarded(buggy, None)

    def mistaken(args):
        raise ConfigError("features.workers must be at least 1, not 0")

    with pytest.raises(SystemExit, match="error: features.workers must be at least 1"):
        run_guarded(mistaken, None)
    with pytest.raises(ConfigError):
        run_guarded(mistaken, None, verbose=True)


def test_params_use_replaces_whole_sections_and_keeps_comments(tmp_path):
    (tmp_path / "params.yaml").write_text(
        "# the project's knobs\ncorpora:  # which corpora\n  demo: {loader: emodb, root: data/demo}\n"
        "features:\n  workers: 2  # processes\n"
    )
    (tmp_path / "real.yaml").write_text("corpora:\n  emodb: {loader: emodb, root: data/real/emodb}\n")
    main(["params", "use", str(tmp_path / "real.yaml"), "--params", str(tmp_path / "params.yaml")])
    text = (tmp_path / "params.yaml").read_text()
    assert yaml.safe_load(text) == {
        "corpora": {"emodb": {"loader": "emodb", "root": "data/real/emodb"}},
        "features": {"workers": 2},
    }
    assert "# the project's knobs" in text and "# processes" in text


def test_evaluate_counts_accuracy_uar_f1_confusion_and_the_majority_rate():
    true = np.array(["negative"] * 6 + ["positive"] * 2)
    predicted = np.array(["negative"] * 5 + ["positive"] + ["positive", "negative"])
    scores = valence_scores(true, predicted)
    assert scores["accuracy"] == pytest.approx(6 / 8)
    assert scores["uar"] == pytest.approx((5 / 6 + 1 / 2) / 2)
    assert scores["confusion"] == [[5, 1], [1, 1]]  # rows true, columns predicted, negative first
    f1_negative, f1_positive = 2 * 5 / (2 * 5 + 1 + 1), 2 * 1 / (2 * 1 + 1 + 1)
    assert scores["macro_f1"] == pytest.approx((f1_negative + f1_positive) / 2)
    assert scores["majority_rate"] == pytest.approx(6 / 8) and scores["n_test"] == 8
