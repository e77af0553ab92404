"""The registered model: refitted on every row, crowned on equal terms, served as it was trained."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from crossemo.data.features import FeatureSettings, labelled_rows
from crossemo.data.speakers import speaker_keys
from crossemo.experiments.metrics import valence_scores
from crossemo.experiments.normalization import MIN_SPEAKER_ROWS, LoneRows, Normalization, Standardiser
from crossemo.models.baselines import SVMValence
from crossemo.models.estimator import ValenceModel
from crossemo.models.validation import validation_split
from crossemo.serving.fitting import train_pipeline
from crossemo.serving.registry import CHAMPION, MODEL_NAME, register
from crossemo.serving.requests import request_speakers
from crossemo.serving.versions import load_registered

from .conftest import cli_status, feature_table, speaker_table


class AlwaysNegative(ValenceModel):
    """A model no better than chance: UAR 0.5 on any rows with both classes."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def _fit(self, x, y, groups, unlabeled):
        self.fitted_ = True

    def _proba(self, x):
        return np.tile([0.9, 0.1], (len(x), 1))


def speaker_pipeline(lone_rows=LoneRows.OWN_MODEL, refit=True):
    return train_pipeline(
        speaker_table(),
        SVMValence(),
        FeatureSettings(),
        normalization=Normalization.SPEAKER,
        lone_rows=lone_rows,
        refit=refit,
    )


def test_the_registered_model_is_refitted_on_every_row_and_the_estimate_comes_from_the_fit_before():
    table, x = labelled_rows(speaker_table())
    trained = speaker_pipeline()
    y, keys = table["valence"].to_numpy(), speaker_keys(table).to_numpy()
    train, held = validation_split(y, keys, 0.25, 0)
    assert trained.rows == len(table) and trained.fit_rows == len(train) < len(table)
    assert sorted(trained.trained_speakers()) == sorted(set(keys))  # the refit saw every speaker
    z = trained.pipeline.standardise(x[:20])
    assert not np.allclose(trained.validation.model.predict_proba(z), trained.pipeline.model.predict_proba(z))
    # the estimate is the first fit's, on its held-out speakers, recomputed here as a client is served
    answers = trained.validation.score(x[held], keys[held])["valence"]
    assert trained.heldout_uar == pytest.approx(valence_scores(y[held], answers)["uar"])
    np.testing.assert_allclose(trained.validation.pooled.mean_, Standardiser.fit(x[train]).mean_, rtol=1e-6)
    np.testing.assert_allclose(trained.pipeline.pooled.mean_, x.mean(0), rtol=1e-5)  # the refit's pooled statistics
    without = speaker_pipeline(refit=False)
    assert without.rows == without.fit_rows == len(train) and without.pipeline is without.validation


def test_a_speakers_rows_are_standardised_on_their_own_statistics_exactly_as_in_training():
    trained = speaker_pipeline()
    pipeline = trained.pipeline
    table, x = labelled_rows(speaker_table(seed=5))  # new speakers
    keys = speaker_keys(table).to_numpy()
    answer = pipeline.score(x, keys)
    assert (answer["standardised_on"] == "speaker").all()
    first = keys == keys[0]
    block = x[first]
    by_hand = (block - block.mean(0)) / block.std(0)
    np.testing.assert_allclose(
        answer["p_positive"].to_numpy()[first], pipeline.model.predict_proba(by_hand)[:, 1], rtol=1e-4, atol=1e-6
    )
    # the same rows shuffled, or sent speaker by speaker, get the same answers
    order = np.random.default_rng(0).permutation(len(x))
    shuffled = pipeline.score(x[order], keys[order])
    np.testing.assert_allclose(shuffled["p_positive"].to_numpy(), answer["p_positive"].to_numpy()[order], atol=1e-6)
    for key in np.unique(keys):
        alone = pipeline.score(x[keys == key], keys[keys == key])
        np.testing.assert_allclose(
            alone["p_positive"].to_numpy(), answer["p_positive"].to_numpy()[keys == key], atol=1e-6
        )


def test_lone_rows_take_the_fallback_the_model_was_trained_for():
    for lone_rows in LoneRows:
        pipeline = speaker_pipeline(lone_rows).pipeline
        table, x = labelled_rows(speaker_table(seed=5))
        few = ["one"] * (MIN_SPEAKER_ROWS - 1) + [None, "", float("nan")]
        rows = x[: len(few)]
        answer = pipeline.score(rows, few)
        assert (answer["standardised_on"] == "lone").all()
        assert (lone_rows is LoneRows.OWN_MODEL) == (pipeline.lone_model is not None)
        fallback = pipeline.lone_model or pipeline.model
        expected = fallback.predict_proba((rows - pipeline.pooled.mean_) / pipeline.pooled.scale_)[:, 1]
        np.testing.assert_allclose(answer["p_positive"].to_numpy(), expected, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(pipeline.score(rows)["p_positive"].to_numpy(), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "value,message",
    [(3, "must be a string"), (True, "must be a string"), ("x" * 201, "at most 200"), ([1], "must be a string")],
)
def test_hostile_speaker_values_are_refused_with_the_row(value, message):
    with pytest.raises(MlflowException, match=message) as error:
        request_speakers(pd.DataFrame({"speaker": ["ok", value]}))
    assert "row 1" in str(error.value) and error.value.get_http_status_code() == 400
    assert request_speakers(pd.DataFrame({"speaker": ["a", None, "", float("nan")]})) == ["a", None, None, None]


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return f"sqlite:///{tmp_path}/mlflow.db"


@pytest.mark.slow
def test_the_champion_is_challenged_on_rows_neither_trained_on(store):
    table = speaker_table()
    first = train_pipeline(table, SVMValence(), FeatureSettings(), refit=False)
    v1 = register(first, {"model": "svm"}, tracking_uri=store, corpora=["a", "b", "c"])
    assert v1.crowned and v1.comparison.reason == "no champion yet"
    worse = register(train_pipeline(table, AlwaysNegative(), FeatureSettings(), refit=False), {"model": "never"})
    assert not worse.crowned and worse.comparison.rows == len(first.heldout)  # the same held-out speakers
    assert worse.comparison.challenger_uar == pytest.approx(0.5)
    assert worse.comparison.champion_uar == pytest.approx(first.heldout_uar)
    assert f"UAR 0.500 against champion v1's {first.heldout_uar:.3f}" in worse.comparison.reason
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version) == str(v1.version)
    recorded = client.get_model_version(MODEL_NAME, str(worse.version))
    assert recorded.tags["crowned"] == "no" and "against champion v1" in recorded.tags["crown_reason"]
    assert "not crowned" in recorded.description and "were not refitted" in recorded.description
    metrics = client.get_run(recorded.run_id).data.metrics
    assert metrics["challenger_uar"] == pytest.approx(0.5) and metrics["training_rows"] == first.fit_rows
    # by hand, either way; then a better model on equal terms wins the crown back
    by_hand = register(train_pipeline(table, AlwaysNegative(), FeatureSettings(), refit=False), {}, crown=True)
    assert by_hand.crowned and by_hand.comparison.reason.startswith("crowned by hand")
    kept = register(train_pipeline(table, SVMValence(), FeatureSettings(), refit=False), {}, crown=False)
    assert not kept.crowned and kept.comparison.challenger_uar > kept.comparison.champion_uar
    better = register(train_pipeline(table, SVMValence(), FeatureSettings(), refit=False), {})
    assert better.crowned and better.comparison.champion == str(by_hand.version)
    assert str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version) == str(better.version)


@pytest.mark.slow
def test_without_rows_unseen_by_both_a_stated_rule_decides(store):
    demo = register(
        train_pipeline(feature_table(), SVMValence(), FeatureSettings()), {}, tracking_uri=store, synthetic=True
    )
    assert demo.crowned
    real = register(train_pipeline(feature_table(seed=1), SVMValence(), FeatureSettings()), {}, synthetic=False)
    assert real.crowned and "replaces one trained on the synthetic demo corpora" in real.comparison.reason
    again = register(train_pipeline(feature_table(seed=1), SVMValence(), FeatureSettings()), {}, synthetic=False)
    assert not again.crowned and "the crown stays" in again.comparison.reason  # the refit champion saw every speaker
    back = register(train_pipeline(feature_table(), SVMValence(), FeatureSettings()), {}, synthetic=True)
    assert not back.crowned and "champion v2 trained on real corpora" in back.comparison.reason
    served = load_registered(f"models:/{MODEL_NAME}@{CHAMPION}")
    x = feature_table()[served.unwrap_python_model().pipeline.feature_names].head(2).astype(float)
    assert set(served.predict(x)["model_version"]) == {str(real.version)}  # the version MLflow assigned


@pytest.mark.slow
@pytest.mark.corpora
def test_a_model_of_the_real_corpora_takes_the_crown_from_the_demo_champion(shared_corpora, store, tmp_path, capsys):
    from crossemo.data.corpora import load_corpus
    from crossemo.data.features import extract_table

    settings = FeatureSettings(workers=2, cache_dir=str(tmp_path / "cache"))
    # 100 utterances of each corpus keep the test short; what matters is where they come from
    tables = [
        extract_table(
            load_corpus(name, shared_corpora / name).sample(100, random_state=0),
            shared_corpora / name,
            settings,
            progress=None,
        )[0]
        for name in ("emodb", "savee", "emovo", "urdu")
    ]
    register(train_pipeline(feature_table(), SVMValence(), FeatureSettings()), {}, tracking_uri=store, synthetic=True)
    trained = train_pipeline(pd.concat(tables, ignore_index=True), SVMValence(), settings, normalization="speaker")
    real = register(trained, {"model": "svm"}, corpora=["emodb", "savee", "emovo", "urdu"], synthetic=False)
    assert real.crowned and real.version == 2
    assert trained.rows == sum(len(labelled_rows(t)[0]) for t in tables)
    card = mlflow.MlflowClient().get_model_version(MODEL_NAME, "2").description
    assert "Trained on emodb, savee, emovo, urdu" in card and "SYNTHETIC" not in card
    assert trained.heldout_uar > 0.55  # real speech, real speakers held out: above chance


@pytest.mark.slow
def test_crossemo_register_prints_both_figures_and_obeys_crown_flags(tmp_path, monkeypatch, capsys):
    import yaml

    monkeypatch.chdir(tmp_path)
    (tmp_path / "features").mkdir()
    for corpus, part in speaker_table().groupby("corpus"):
        part.to_parquet(tmp_path / "features" / f"{corpus}.parquet")
    params = {
        "corpora": {c: {"loader": "emodb", "root": f"data/{c}"} for c in ("a", "b", "c")},
        "models": {"svm": {"model": "svm"}},
        "registry": {"model": "svm", "refit": False, "normalization": "speaker"},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert cli_status(["register"]) == 0
    assert "crowned champion: no champion yet" in capsys.readouterr().out
    assert cli_status(["register", "--no-crown"]) == 0
    out = capsys.readouterr().out
    assert "the champion stays: not crowned by hand; UAR" in out and "against champion v1's" in out
    assert cli_status(["register", "--crown", "--no-crown"]) == 2


@pytest.mark.slow
def test_after_a_version_is_deleted_the_answers_report_the_number_mlflow_assigned(store):
    trained = train_pipeline(feature_table(), SVMValence(), FeatureSettings(), refit=False)
    register(trained, {}, tracking_uri=store)
    register(trained, {}, crown=True)
    mlflow.MlflowClient().delete_model_version(MODEL_NAME, "2")  # max + 1 would now guess 2 again
    third = register(trained, {}, crown=True)
    assert third.version == 3
    served = load_registered(f"models:/{MODEL_NAME}@{CHAMPION}")
    x = feature_table()[served.unwrap_python_model().pipeline.feature_names].head(1).astype(float)
    assert served.predict(x)["model_version"].tolist() == ["3"]
