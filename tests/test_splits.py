"""Protocols and normalisation: no test label or test-label statistic reaches training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crossemo.errors import UserError
from crossemo.experiments.normalization import MIN_SPEAKER_ROWS, Normalization, normalization_groups, normalize
from crossemo.experiments.protocols import cross_corpus, target_fraction, within_random, within_speaker_folds
from crossemo.models.validation import corpus_validation_split


def corpora_table(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for corpus, speakers, language in (("a", 6, "x"), ("b", 4, "y"), ("c", 1, "z")):
        for s in range(speakers):
            for _ in range(20 if speakers > 1 else 60):
                rows.append(
                    {
                        "corpus": corpus,
                        "language": language,
                        "speaker": f"s{s}",
                        "valence": "negative" if rng.random() < 0.6 else "positive",
                    }
                )
    return pd.DataFrame(rows)


def test_corpus_validation_split_holds_out_whole_corpora_in_turn():
    groups = np.array(["b/1", "a/1", "a/2", "c/1", "b/2", "a/1"])
    held_out = []
    for member in range(4):
        train, val = corpus_validation_split(groups, member)
        assert sorted([*train, *val]) == list(range(6))
        held_out.append({g.split("/")[0] for g in groups[val]})
        assert held_out[-1].isdisjoint(g.split("/")[0] for g in groups[train])
    assert held_out == [{"a"}, {"b"}, {"c"}, {"a"}]  # sorted corpora, member by member, then around again
    assert corpus_validation_split(np.array(["a/1", "a/2"]), 0) is None  # one corpus: nothing to hold out
    assert corpus_validation_split(np.array(["s1", "s2"]), 0) is None  # keys that name no corpus


def test_random_within_split_is_stratified_75_25_and_seeded():
    table = corpora_table()
    (split,) = within_random(table, "a", seed=1)
    assert len(split.test) == 30 and len(split.train) == 90
    assert set(table["corpus"].iloc[np.concatenate([split.train, split.test])]) == {"a"}
    assert np.array_equal(split.test, within_random(table, "a", seed=1)[0].test)
    assert not np.array_equal(split.test, within_random(table, "a", seed=2)[0].test)
    assert not split.speaker_disjoint  # the paper's protocol shares speakers: the report says so


def test_speaker_folds_never_share_a_speaker_and_cover_every_row():
    table = corpora_table()
    folds = within_speaker_folds(table, "b", seed=0, folds=5)
    assert len(folds) == 4  # four speakers: leave one speaker out
    covered = np.concatenate([f.test for f in folds])
    assert sorted(covered) == sorted(np.flatnonzero(table["corpus"] == "b"))
    for fold in folds:
        assert set(table["speaker"].iloc[fold.train]).isdisjoint(table["speaker"].iloc[fold.test])
    with pytest.raises(UserError, match="one speaker"):
        within_speaker_folds(table, "c", seed=0)


def test_speaker_folds_differ_by_seed_even_when_speakers_differ_in_size():
    """Speakers of unequal size: an unshuffled GroupKFold deals them out by size, whatever the seed."""
    sizes = [40, 35, 30, 25, 20, 15, 12, 10, 8, 5]
    table = pd.DataFrame(
        {
            "corpus": "e",
            "speaker": np.repeat([f"s{i}" for i in range(len(sizes))], sizes),
            "valence": np.resize(["negative", "positive"], sum(sizes)),
        }
    )
    assignments = set()
    for seed in (0, 1, 7):
        folds = within_speaker_folds(table, "e", seed=seed, folds=5)
        assert len(folds) == 5
        assert sorted(np.concatenate([f.test for f in folds])) == list(range(len(table)))
        assignments.add(frozenset(frozenset(table["speaker"].iloc[f.test]) for f in folds))
    assert len(assignments) == 3  # three seeds, three different ways to fold the speakers
    again = within_speaker_folds(table, "e", seed=1, folds=5)
    assert frozenset(frozenset(table["speaker"].iloc[f.test]) for f in again) in assignments


def test_cross_corpus_trains_on_sources_only():
    table = corpora_table()
    split = cross_corpus(table, ["a", "c"], "b")
    assert set(table["corpus"].iloc[split.train]) == {"a", "c"}
    assert set(table["corpus"].iloc[split.test]) == {"b"}
    with pytest.raises(ValueError, match="also a source"):
        cross_corpus(table, ["a", "b"], "b")


def test_target_fraction_takes_whole_speakers_when_it_can_and_says_when_not():
    table = corpora_table()
    split = target_fraction(table, ["b"], "a", 0.3, seed=0)
    target_train = split.train[table["corpus"].iloc[split.train].to_numpy() == "a"]
    assert split.speaker_disjoint
    assert set(table["speaker"].iloc[target_train]).isdisjoint(table["speaker"].iloc[split.test])
    assert len(target_train) / 120 == pytest.approx(0.33, abs=0.01)  # two of six speakers
    single = target_fraction(table, ["a"], "c", 0.2, seed=0)
    assert not single.speaker_disjoint and "too few speakers" in single.notes
    assert len(single.test) == 48


def test_train_normalisation_ignores_test_rows():
    table = corpora_table()
    rng = np.random.default_rng(0)
    features = rng.normal(5, 3, (len(table), 4)).astype(np.float32)
    split = cross_corpus(table, ["a"], "b")
    before = normalize(features, table, split, Normalization.TRAIN)
    changed = features.copy()
    changed[split.test] *= 100  # anything about the test rows
    after = normalize(changed, table, split, Normalization.TRAIN)
    np.testing.assert_array_equal(before[split.train], after[split.train])
    assert abs(before[split.train].mean()) < 1e-5


def test_corpus_and_speaker_normalisation_use_no_labels():
    table = corpora_table()
    features = np.random.default_rng(1).normal(2, 4, (len(table), 3)).astype(np.float32)
    split = cross_corpus(table, ["a"], "b")
    flipped = table.assign(valence=np.where(table["valence"] == "negative", "positive", "negative"))
    for method in ("corpus", "speaker"):
        x = normalize(features, table, split, method)
        np.testing.assert_array_equal(x, normalize(features, flipped, split, method))
        group = normalization_groups(table, method)
        means = pd.DataFrame(x).groupby(group).mean().to_numpy()
        np.testing.assert_allclose(means, 0, atol=1e-5)


def test_speakers_with_few_utterances_are_standardised_with_their_corpus():
    table = corpora_table()  # a and b: speakers of 20 utterances; c: one speaker of 60
    groups = normalization_groups(table, "speaker")
    assert set(groups[table["corpus"] != "c"]) == {"a", "b"}  # below MIN_SPEAKER_ROWS: the corpus' statistics
    assert set(groups[table["corpus"] == "c"]) == {"c/s0"} and MIN_SPEAKER_ROWS <= 60
    assert list(normalization_groups(table, "corpus")) == list(table["corpus"])


def test_a_corpus_of_mostly_small_speakers_keeps_its_statistics_even_for_its_large_ones():
    def corpus(name, sizes):
        return pd.DataFrame(
            {"corpus": name, "speaker": [f"s{i}" for i, n in enumerate(sizes) for _ in range(n)], "valence": "negative"}
        )

    # u: URDU-like, median speaker 4 utterances, one of 80; e: median 50, one speaker of 10
    table = pd.concat([corpus("u", [80, 4, 4, 2, 3]), corpus("e", [50, 60, 10])], ignore_index=True)
    groups = pd.Series(normalization_groups(table, "speaker"))
    assert set(groups[table["corpus"] == "u"]) == {"u"}
    assert sorted(set(groups[table["corpus"] == "e"])) == ["e", "e/s0", "e/s1"]  # s2 (10 utterances) takes e's


def test_iemocap_two_session_protocol_is_two_fold_over_sessions():
    from crossemo.experiments.protocols import within_sessions

    table = pd.DataFrame(
        {
            "corpus": ["i"] * 6 + ["e"] * 2,
            "speaker": list("abcdefgh"),
            "session": [1, 1, 2, 2, 3, 3, np.nan, np.nan],
            "valence": ["negative", "positive"] * 4,
        }
    )
    first, second = within_sessions(table, "i")
    assert list(first.train) == [0, 1] and list(first.test) == [2, 3]
    assert list(second.train) == [2, 3] and list(second.test) == [0, 1]
    assert within_sessions(table, "e") == []


def test_confidence_intervals_are_students_t_and_stay_within_0_and_1():
    from crossemo.experiments.metrics import mean_ci, summarize

    mean, std, low, high = mean_ci([0.6, 0.7, 0.8])
    assert (mean, round(std, 6)) == (pytest.approx(0.7), 0.1)
    assert high - mean == pytest.approx(4.302653 * 0.1 / np.sqrt(3), rel=1e-5)  # t(0.975, 2 df)
    results = pd.DataFrame(
        {
            "model": "m",
            "seed": [0, 1, 2],
            "accuracy": [1.0, 0.9, 1.0],
            "uar": [1.0, 0.9, 1.0],
            "macro_f1": 0.9,
            "majority_rate": 0.5,
        }
    )
    row = summarize(results, ["model"]).iloc[0]
    assert row["accuracy_ci_high"] == 1.0 and row["accuracy_ci_low"] < row["accuracy"]
