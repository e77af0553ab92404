"""Test-only corpora never lend a label to training; the transfer scenario tests on them with and
without their audio."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest

from crossemo.config import trainable_corpora
from crossemo.data.features import labelled_rows
from crossemo.errors import ConfigError
from crossemo.experiments.fit_reuse import REUSED_FROM_TAG, stored_model
from crossemo.experiments.metrics import valence_scores
from crossemo.experiments.normalization import Normalization, normalization_groups, normalize_unseen, standardise_groups
from crossemo.experiments.protocols import cross_corpus
from crossemo.experiments.runner import PROTOCOLS, Job, Runner, _pool
from crossemo.experiments.settings import TargetAudio, experiment_settings

from .conftest import feature_table
from .test_experiments import TINY, settings, store  # noqa: F401  (the store fixture)


def shifted_table():
    """feature_table with corpus c recorded 'louder': its raw features sit 3 units higher."""
    table = feature_table()
    columns = table.columns[5:]
    table.loc[table["corpus"] == "c", columns] += 3.0
    return table


def jobs(scenario, **kw):
    table = feature_table()
    s = settings("sqlite://", test_only=("c",), **kw)
    languages = {"a": "x", "b": "y", "c": "z"}
    return table, PROTOCOLS[scenario](table, ["a", "b", "c"], languages, s, 0)


@pytest.mark.parametrize("scenario", ["within", "single_source", "target_fraction", "multi_source", "leave_one_out"])
def test_a_test_only_corpus_is_never_in_any_training_set(scenario):
    table, made = jobs(scenario, multi_source_size=1 if scenario == "multi_source" else 2)
    c_rows = set(np.flatnonzero(table["corpus"].to_numpy() == "c"))
    assert made and all(c_rows.isdisjoint(job.split.train) for job in made)
    tested_on_c = any(job.split.target == "c" for job in made)
    # a cross-corpus scenario still tests on it; within-corpus and target-fraction would need its labels
    assert tested_on_c == (scenario in ("single_source", "multi_source", "leave_one_out"))


def test_test_only_is_read_from_corpora_and_refused_where_labels_would_train():
    params = {
        "corpora": {"a": {"root": "x"}, "b": {"root": "y"}, "c": {"root": "z", "test_only": True}},
        "experiments": {"models": ["svm"], "transfer": {"train_corpora": ["a", "c"]}},
    }
    assert experiment_settings(params, "within").test_only == ("c",)
    with pytest.raises(ConfigError, match=r"train_corpora names \['c'\], marked test_only"):
        experiment_settings(params, "transfer")
    assert trainable_corpora(params, None, "tuning.corpora") == ("a", "b")
    with pytest.raises(ConfigError, match=r"tuning.corpora names \['c'\], marked test_only"):
        trainable_corpora(params, ["a", "c"], "tuning.corpora")


def test_transfer_without_test_corpora_says_how_to_name_them():
    table = feature_table()
    with pytest.raises(ConfigError, match="mark corpora test_only: true.*test_corpora"):
        PROTOCOLS["transfer"](table, ["a", "b", "c"], {}, settings("sqlite://"), 0)


def test_unseen_audio_standardises_the_test_corpus_with_training_statistics_and_keeps_it_out_of_the_pool():
    table = shifted_table()
    x = table[table.columns[5:]].to_numpy(np.float32)
    split = cross_corpus(table, ["a", "b"], "c")
    unseen = normalize_unseen(x, table, split, Normalization.CORPUS)
    # training corpora on their own statistics; c on a and b's: its loudness shows, as in one utterance at a time
    assert abs(unseen[split.train].mean()) < 1e-5
    assert unseen[split.test].mean() > 1.0
    np.testing.assert_allclose(unseen[split.test], (x[split.test] - x[split.train].mean(0)) / x[split.train].std(0))

    every_row = settings("sqlite://")  # experiments.unlabeled: all
    ways = (TargetAudio.USED, TargetAudio.UNSEEN, TargetAudio.STATISTICS)
    seen, hidden, scaled = (Job("t", split, target_audio=a) for a in ways)
    assert len(_pool(every_row, unseen, seen)) == len(table)  # 'all': every corpus, c's audio included
    np.testing.assert_array_equal(_pool(every_row, unseen, hidden), unseen[split.train])
    np.testing.assert_array_equal(_pool(every_row, unseen, scaled), unseen[split.train])  # statistics: no pool either


def test_transfer_scenario_reports_both_ways_on_the_test_corpus(store):  # noqa: F811
    s = settings(store, models=("svm",), seeds=(0,), test_only=("c",))
    results = Runner("transfer", shifted_table(), TINY, s, progress=False).run()
    assert sorted(results["protocol"]) == ["audio_unseen", "audio_used"]
    assert set(results["source"]) == {"a+b"} and set(results["target"]) == {"c"}
    by_way = results.set_index("protocol")["uar"]
    # with its own statistics, c's offset is gone; without them, the SVM sees every utterance shifted
    assert by_way["audio_used"] > by_way["audio_unseen"]


def test_statistics_tests_the_unseen_fit_on_the_test_corpus_scaled_as_crossemo_evaluate_scales_it(store):  # noqa: F811
    ways = ("unseen", "statistics", "used")
    s = settings(store, models=("svm", "dbn_tiny"), seeds=(0,), test_only=("c",), target_audio=ways)
    table = shifted_table()
    results = Runner("transfer", table, TINY, s, progress=False).run()
    assert sorted(set(results["protocol"])) == ["audio_statistics", "audio_unseen", "audio_used"]
    labelled, x = labelled_rows(table)
    c = (labelled["corpus"] == "c").to_numpy()
    on_own_statistics = standardise_groups(x[c], normalization_groups(labelled[c], s.normalization))
    for _, rows in results.groupby("model"):
        by_way = rows.set_index("protocol")
        run = mlflow.MlflowClient(store).get_run(by_way.loc["audio_statistics", "run_id"])
        # unseen's very fit (c's audio in no pool), stored once, in unseen's run
        assert run.data.tags[REUSED_FROM_TAG] == by_way.loc["audio_unseen", "run_id"]
        scores = valence_scores(labelled["valence"][c], stored_model(run).predict(on_own_statistics))
        assert scores["uar"] == pytest.approx(by_way.loc["audio_statistics", "uar"])
    # c's offset is gone with its own statistics, as with its audio used
    svm = results[results["model"] == "svm"].set_index("protocol")["uar"]
    assert svm["audio_statistics"] > svm["audio_unseen"]
