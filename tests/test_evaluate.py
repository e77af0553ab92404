"""`crossemo evaluate`: a trained model on corpora named in params.yaml, scored per corpus."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from crossemo.config import corpus_config, feature_settings
from crossemo.data.features import feature_names, labelled_rows
from crossemo.experiments.metrics import valence_scores
from crossemo.experiments.normalization import Normalization, standardise_groups
from crossemo.models.baselines import SVMValence
from crossemo.serving.corpus_evaluation import corpus_features
from crossemo.serving.fitting import train_pipeline
from crossemo.serving.registry import register

from .conftest import cli_status, tone

pytestmark = pytest.mark.slow


def manifest_corpus(folder, seed: int, language: str):
    """Sixteen utterances of four speakers: anger high and bright, sadness low and dark (negative);
    happiness and neutral in between (positive)."""
    folder.mkdir()
    rows, rng = [], np.random.default_rng(seed)
    pitch = {"anger": 260, "sadness": 110, "happiness": 200, "neutral": 160}
    for i in range(16):
        emotion = list(pitch)[i % 4]
        name = f"u{i}.wav"
        tone(folder / name, seconds=0.7, f0=pitch[emotion] * rng.uniform(0.95, 1.05), seed=seed * 100 + i)
        rows.append({"path": name, "emotion": emotion, "speaker": f"s{i // 4}", "language": language})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    manifest_corpus(root / "mine", seed=1, language="xx")
    manifest_corpus(root / "theirs", seed=2, language="yy")
    params = {
        "corpora": {
            "mine": {"loader": "manifest", "root": str(root / "mine")},
            "theirs": {"loader": "manifest", "root": str(root / "theirs"), "test_only": True},
        },
        "features": {"workers": 1, "cache_dir": str(root / "cache")},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    settings = feature_settings(params)
    train = corpus_features(corpus_config(params, "mine"), settings, progress=False)
    trained = train_pipeline(train, SVMValence(), settings, normalization=Normalization.CORPUS)
    uri = f"sqlite:///{root}/mlflow.db"
    register(trained, {"model": "svm"}, tracking_uri=uri)
    return root, uri, trained.pipeline, params


def run(project, *args) -> int:
    root, uri, _, _ = project
    return cli_status(["evaluate", "--tracking-uri", uri, "--params", str(root / "params.yaml"), *args])


def test_the_champion_is_scored_per_corpus_with_each_corpus_on_its_own_statistics(project, tmp_path, capsys):
    root, _, pipeline, params = project
    assert run(project, "champion", "mine", "theirs", "-o", str(tmp_path / "scores.json")) == 0
    printed = capsys.readouterr()
    assert "models:/crossemo-valence@champion (corpus normalisation" in printed.err
    scores = pd.DataFrame(json.loads((tmp_path / "scores.json").read_text())).set_index("corpus")
    assert list(scores.index) == ["mine", "theirs"] and (scores["n"] == 16).all()
    # the same numbers by hand: the registered SVM on the corpus standardised on its own statistics
    table, x = labelled_rows(corpus_features(corpus_config(params, "theirs"), feature_settings(params), False))
    expected = valence_scores(
        table["valence"], pipeline.model.predict(standardise_groups(x, table["corpus"].to_numpy()))
    )
    assert scores.loc["theirs", "uar"] == pytest.approx(expected["uar"])
    assert scores.loc["theirs", ["neg->neg", "neg->pos", "pos->neg", "pos->pos"]].tolist() == sum(
        expected["confusion"], []
    )
    assert "| theirs | 16 |" in printed.out


def test_the_training_statistics_can_be_asked_for_instead(project, tmp_path):
    root, _, pipeline, params = project
    run(project, "champion", "theirs", "--normalization", "corpus", "-o", str(tmp_path / "corpus.csv"))
    run(project, "champion", "theirs", "--normalization", "train", "-o", str(tmp_path / "train.csv"))
    corpus, train = pd.read_csv(tmp_path / "corpus.csv"), pd.read_csv(tmp_path / "train.csv")
    table, x = labelled_rows(corpus_features(corpus_config(params, "theirs"), feature_settings(params), False))
    by_hand = valence_scores(table["valence"], pipeline.model.predict(pipeline.standardise(x)))
    assert train["uar"].iloc[0] == pytest.approx(by_hand["uar"])
    assert corpus["n"].iloc[0] == train["n"].iloc[0] == 16


def test_as_served_scores_one_utterance_at_a_time_and_the_synthetic_warning_is_absent(project, tmp_path, capsys):
    root, _, pipeline, params = project
    assert run(project, "champion", "theirs", "--as-served", "-o", str(tmp_path / "served.csv")) == 0
    err = capsys.readouterr().err
    assert "as served: one utterance at a time" in err and "crossemo-valence v1: binary valence" in err
    assert "SYNTHETIC" not in err  # trained on manifest corpora, not on the demo's
    table, x = labelled_rows(corpus_features(corpus_config(params, "theirs"), feature_settings(params), False))
    by_hand = valence_scores(
        table["valence"], pipeline.model.predict((x - pipeline.pooled.mean_) / pipeline.pooled.scale_)
    )
    assert pd.read_csv(tmp_path / "served.csv")["uar"].iloc[0] == pytest.approx(by_hand["uar"])


def test_unknown_references_and_corpora_are_one_line_errors(project, capsys):
    assert run(project, "champion", "nowhere") == 1
    assert run(project, "0123456789abcdef", "mine") == 1
    assert run(project, "champion", "mine", "-o", "scores.txt") == 1
    err = capsys.readouterr().err
    assert "corpus 'nowhere' is not in params.yaml's corpora: mine, theirs" in err
    assert "no run with a model.joblib artifact" in err and "give a .csv or .json file" in err


def test_a_manifest_given_as_the_csv_file_itself_makes_its_table_and_features(project, tmp_path, monkeypatch):
    root, _, _, params = project
    monkeypatch.chdir(tmp_path)
    csv = {**params, "corpora": {"mine": {"loader": "manifest", "root": str(root / "mine" / "manifest.csv")}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(csv))
    assert cli_status(["table", "mine"]) == 0 and cli_status(["features", "mine"]) == 0
    made = pd.read_parquet(tmp_path / "features" / "mine.parquet")
    by_folder = corpus_features(corpus_config(params, "mine"), feature_settings(params), progress=False)
    assert len(made) == 16 and np.allclose(made[feature_names()], by_folder[feature_names()])


def test_a_model_adapted_to_a_corpus_at_registration_and_at_evaluation_is_the_coral_fit_by_hand(
    project, tmp_path, monkeypatch, capsys
):
    """register --adapt and evaluate --adapt: the training corpus' SVM aligned to the evaluated
    corpus' covariance (its labels never read), exactly as a fit by hand; the card says so."""
    from crossemo.experiments.normalization import LoneRows
    from crossemo.models.adaptation import CoralAdapted
    from crossemo.serving.adapting import TargetRows
    from crossemo.serving.fitting import fit_pipeline
    from crossemo.serving.versions import model_summary

    root, uri, _, params = project
    settings = feature_settings(params)
    mine, theirs = (corpus_features(corpus_config(params, c), settings, False) for c in ("mine", "theirs"))
    (tmp_path / "features").mkdir()
    mine.to_parquet(tmp_path / "features" / "mine.parquet")
    own = {
        **params,
        "models": {"svm": {"model": "svm"}},
        "registry": {"model": "svm", "corpora": ["mine"], "normalization": "corpus"},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(own))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    assert cli_status(["register", "--adapt", "theirs", "--no-crown"]) != 0  # svm's adaptation is none
    assert "give --adapt-method (coral, dann, self_training)" in capsys.readouterr().err
    assert cli_status(["register", "--adapt", "theirs", "--adapt-method", "coral", "--no-crown"]) == 0
    assert "adapted: coral to theirs (16 utterances, label-free)" in capsys.readouterr().out
    version = max(mlflow_versions(uri), key=lambda v: int(v.version))
    assert version.tags["adapted_to"] == "theirs" and version.tags["adaptation"] == "coral"
    summary = model_summary(f"models:/crossemo-valence/{version.version}")  # what serve, predict, evaluate print
    assert "Adapted (coral to theirs (16 utterances, label-free)) at registration" in summary

    table, x = labelled_rows(mine)
    target = TargetRows.from_tables({"theirs": theirs})
    assert "valence" not in target.table.columns
    by_hand = fit_pipeline(
        CoralAdapted(SVMValence()), table, x, settings, Normalization.CORPUS, LoneRows.POOLED, target
    )
    theirs_table, theirs_x = labelled_rows(theirs)
    expected = by_hand.model.predict(standardise_groups(theirs_x, theirs_table["corpus"].to_numpy()))
    uar = valence_scores(theirs_table["valence"], expected)["uar"]

    reference = f"models:/crossemo-valence/{version.version}"
    assert cli_status(["evaluate", reference, "theirs", "-o", "registered.csv"]) == 0
    assert cli_status(["evaluate", reference, "theirs", "--adapt", "-o", "evaluated.csv"]) == 0
    assert "adapted to each corpus in turn" in capsys.readouterr().err
    assert cli_status(["evaluate", "champion", "theirs", "--adapt", "--adapt-method", "coral"]) == 1
    assert "records no configuration (registered before crossemo 0.3" in capsys.readouterr().err
    for scored in ("registered.csv", "evaluated.csv"):
        assert pd.read_csv(scored)["uar"].iloc[0] == pytest.approx(uar)


def mlflow_versions(uri: str):
    import mlflow

    return mlflow.MlflowClient(uri).search_model_versions("name = 'crossemo-valence'")
