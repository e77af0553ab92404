"""Domain adaptation, label-free: CORAL (every model), DANN (the networks), self-training (every model)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from crossemo.errors import ConfigError
from crossemo.experiments.runner import Runner
from crossemo.experiments.settings import ExperimentSettings
from crossemo.models.adaptation import (
    CoralAdapted,
    DannSettings,
    SelfTrained,
    confident_rows,
    coral_matrix,
    reverse_gradient,
)
from crossemo.models.baselines import SVMValence
from crossemo.models.catalog import model_from_config

from .conftest import TINY_MODELS, feature_table


def two_domains(seed: int = 0, n: int = 400, d: int = 6):
    rng = np.random.default_rng(seed)
    source = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    target = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + 3.0
    return source.astype(np.float64), target.astype(np.float64)


def test_coral_gives_the_training_rows_the_targets_covariance():
    source, target = two_domains()
    matrix = coral_matrix(source, target, regularisation=0.0)
    aligned = (source - source.mean(0)) @ matrix
    np.testing.assert_allclose(np.cov(aligned, rowvar=False), np.cov(target, rowvar=False), rtol=1e-6, atol=1e-6)


def test_the_svm_with_coral_is_the_svm_on_the_hand_computed_transform():
    source, target = two_domains(1)
    x, t = source.astype(np.float32), target.astype(np.float32)
    y = np.where(source[:, 0] > np.median(source[:, 0]), "positive", "negative")
    configs = {"svm_coral": {"model": "svm", "adaptation": "coral"}}
    adapted = model_from_config(configs, "svm_coral").fit(x, y, unlabeled=t)
    assert isinstance(adapted, CoralAdapted)
    # by hand: the paper's regularised covariances (+ I), rows centred on their mean and moved back
    eye = np.eye(x.shape[1])
    c_s, c_t = np.cov(x, rowvar=False) + eye, np.cov(t, rowvar=False) + eye
    values_s, vectors_s = np.linalg.eigh(c_s)
    values_t, vectors_t = np.linalg.eigh(c_t)
    by_hand = (vectors_s / np.sqrt(values_s)) @ vectors_s.T @ (vectors_t * np.sqrt(values_t)) @ vectors_t.T
    plain = SVMValence().fit(((x - x.mean(0)) @ by_hand + x.mean(0)).astype(np.float32), y)
    np.testing.assert_allclose(adapted.predict_proba(t), plain.predict_proba(t), atol=1e-4)
    assert (adapted.predict(t) == plain.predict(t)).all()
    reordered = model_from_config(configs, "svm_coral").fit(x, y, unlabeled=t[::-1].copy())
    np.testing.assert_allclose(reordered.predict_proba(t), adapted.predict_proba(t), atol=1e-6)


def test_unknown_methods_are_refused_naming_the_key_and_coral_without_target_rows_says_why():
    with pytest.raises(
        ConfigError, match=r"models.svm_x.adaptation is 'mmd'; use one of none, coral, dann, self_training"
    ):
        model_from_config({"svm_x": {"model": "svm", "adaptation": "mmd"}}, "svm_x")
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    with pytest.raises(ConfigError, match="experiments.unlabeled: target"):
        model_from_config({"c": {"model": "svm", "adaptation": "coral"}}, "c").fit(x, ["negative", "positive"] * 10)


@pytest.mark.parametrize("kind", ["svm", "svm_cv", "sae_svm", "dbn_svm"])
def test_dann_on_a_model_without_a_fine_tuned_network_is_refused_at_construction(kind):
    with pytest.raises(ConfigError, match=rf"models.{kind}_dann.adaptation is dann.*dbn or mlp"):
        model_from_config({f"{kind}_dann": {"model": kind, "adaptation": "dann"}}, f"{kind}_dann")


@pytest.mark.parametrize(
    "config, says",
    [
        ({"model": "mlp", "adaptation": "dann", "dann": {"weight": 0}}, "dann.weight is 0"),
        ({"model": "mlp", "adaptation": "dann", "dann": {"wieght": 1}}, r"models.m.dann: .*'wieght'"),
        ({"model": "mlp", "adaptation": "none", "dann": {"weight": 1}}, "adaptation is none but options for dann"),
        ({"model": "svm", "adaptation": "coral", "self_training": {}}, "coral but options for self_training"),
        ({"model": "svm", "adaptation": "self_training", "self_training": {"share": 1.5}}, "share is 1.5"),
        ({"model": "mlp", "adaptation": "dann", "finetune": {"mixup_alpha": 0.2}}, "mixup_alpha"),
    ],
)
def test_bad_method_options_are_refused_at_construction_naming_the_configuration(config, says):
    with pytest.raises(ConfigError, match=says) as refused:
        model_from_config({"m": config}, "m")
    assert str(refused.value).startswith("models.m")


def test_gradient_reversal_passes_forward_unchanged_and_negates_and_scales_the_gradient():
    x = torch.randn(5, 3, requires_grad=True)
    weights = torch.randn(3)
    out = reverse_gradient(x, 0.3)
    assert torch.equal(out, x)
    (out * weights).sum().backward()
    torch.testing.assert_close(x.grad, -0.3 * weights.expand(5, 3))


def test_the_domain_weight_rises_from_0_to_the_set_weight_on_gannins_schedule():
    dann = DannSettings(weight=0.5, gamma=10.0)
    weights = [dann.weight_at(p) for p in np.linspace(0, 1, 11)]
    assert weights[0] == 0 and all(a < b for a, b in zip(weights, weights[1:]))
    assert weights[-1] == pytest.approx(0.5 * (2 / (1 + np.exp(-10)) - 1))
    assert dann.weight_at(0.1) == pytest.approx(0.5 * (2 / (1 + np.exp(-1)) - 1))


def shifted_corpora(seed: int = 0):
    """Two labelled training corpora and an unlabeled target whose features are shifted."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(240, 10)).astype(np.float32)
    y = np.where(x[:, 0] + 0.5 * rng.normal(size=240) > 0, "positive", "negative")
    groups = np.array([f"{'ab'[i % 2]}/s{i % 8}" for i in range(240)])
    target = (rng.normal(size=(160, 10)) + np.linspace(0, 2, 10)).astype(np.float32)
    return x, y, groups, target


DANN_MLP = {
    "model": "mlp",
    "hidden": [16, 8],
    "adaptation": "dann",
    "dann": {"weight": 1.0, "hidden": 8},
    # every epoch counts (no early stopping: the best epoch could be the first, whose domain weight is 0)
    "finetune": {"max_epochs": 10, "learning_rate": 0.01, "batch_size": 32, "validation_fraction": 0},
}


def test_a_dann_fit_is_repeatable_for_a_seed_and_the_adversary_changes_it():
    x, y, groups, target = shifted_corpora()
    configs = {"dann": DANN_MLP, "plain": {k: v for k, v in DANN_MLP.items() if k not in ("adaptation", "dann")}}
    fitted = [
        model_from_config(configs, name, seed=s).fit(x, y, groups=groups, unlabeled=target)
        for name, s in (("dann", 0), ("dann", 0), ("dann", 1), ("plain", 0))
    ]
    probabilities = [m.predict_proba(target) for m in fitted]
    np.testing.assert_array_equal(probabilities[0], probabilities[1])
    assert np.abs(probabilities[0] - probabilities[2]).max() > 1e-4  # another seed, another fit
    assert np.abs(probabilities[0] - probabilities[3]).max() > 1e-4  # the domain loss moved the net
    assert fitted[0].learns_from_unlabeled and not fitted[3].learns_from_unlabeled
    with pytest.raises(ConfigError, match="adaptation: dann needs the target's unlabeled rows"):
        model_from_config(configs, "dann").fit(x, y, groups=groups)


def test_the_domain_classifier_learns_each_training_corpus_and_the_target():
    from crossemo.models.training import DomainAdversarialClassifier

    x, y, groups, target = shifted_corpora()
    seen = []
    original = DomainAdversarialClassifier._loss

    def spy(self, rows, labels, domains):
        seen.append((self.domain_head[-1].out_features, set(domains.tolist()), self.domain_weight))
        return original(self, rows, labels, domains)

    DomainAdversarialClassifier._loss = spy
    try:
        model_from_config({"d": DANN_MLP}, "d").fit(x, y, groups=groups, unlabeled=target)
    finally:
        DomainAdversarialClassifier._loss = original
    assert seen[0][0] == 3  # corpora a and b, then the target
    assert set().union(*(domains for _, domains, _ in seen)) == {0, 1}
    weights = [w for *_, w in seen]
    assert weights[0] == 0 and weights[-1] > weights[0]


def test_self_training_adds_the_surest_target_rows_as_many_per_class_in_growing_rounds():
    x, y, groups, target = shifted_corpora(2)
    configs = {"st": {"model": "svm", "adaptation": "self_training", "self_training": {"rounds": 2, "share": 0.5}}}
    model = model_from_config(configs, "st").fit(x, y, groups=groups, unlabeled=target)
    svm = SVMValence().fit(x, y)
    decisions = svm._decide(target)
    fewer = min((decisions == label).sum() for label in (0, 1))
    assert 0 < fewer < 40  # the test's point: one class is decided less often than a quarter of the rows
    assert isinstance(model, SelfTrained)
    assert model.pseudo_counts_[0] == 2 * min(20, fewer)  # round 1 takes the plain fit's surest 25%
    assert (
        model.pseudo_counts_[1] > model.pseudo_counts_[0] and model.pseudo_counts_[1] % 2 == 0
    )  # round 2: the refit's
    chosen, decided = confident_rows(svm, target, 0.5)
    assert (decided == 0).sum() == (decided == 1).sum() == fewer  # balanced: the rarer class sets the count
    confidence = svm.predict_proba(target)[np.arange(len(target)), decisions]
    taken = np.isin(np.arange(len(target)), chosen)
    left_out = 0
    for label in (0, 1):  # no row left out is surer of its class than one taken
        of_class = decisions == label
        if (of_class & ~taken).any():
            left_out += 1
            assert confidence[taken & of_class].min() >= confidence[of_class & ~taken].max()
    assert left_out == 1  # the commoner class was ranked; the rarer one taken whole


LEAK_MODELS = {
    "svm_coral": {"model": "svm", "adaptation": "coral"},
    "svm_self_training": {"model": "svm", "adaptation": "self_training"},
    "dbn_dann": {**TINY_MODELS["dbn_tiny"], "adaptation": "dann"},
    "dbn_self_training": {**TINY_MODELS["dbn_tiny"], "adaptation": "self_training", "self_training": {"rounds": 1}},
    "mlp_coral": {"model": "mlp", "hidden": [8], "adaptation": "coral", "finetune": {"max_epochs": 3}},
}


def leave_one_out_predictions(table, tmp_path, name: str, workers: int = 1) -> pd.DataFrame:
    """Leave one corpus out with the target's rows as the pool: corpus a's predictions file."""
    import mlflow

    store = f"sqlite:///{tmp_path}/{name}.db"
    settings = ExperimentSettings(
        models=tuple(LEAK_MODELS),
        seeds=(0,),
        unlabeled="target",
        tracking_uri=store,
        log_models=False,
        reuse_fits=False,
        workers=workers,
    )
    Runner("leave_one_out", table, LEAK_MODELS, settings, progress=False).run()
    mlflow.set_tracking_uri(store)
    runs = mlflow.search_runs(experiment_names=["crossemo-leave_one_out"], filter_string="tags.target = 'a'")
    frames = []
    for run_id, model in zip(runs["run_id"], runs["tags.model"]):
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="predictions.csv")
        frames.append(pd.read_csv(path).assign(model=model))
    return pd.concat(frames).sort_values(["model", "utterance_id"]).reset_index(drop=True)


@pytest.mark.slow
def test_no_target_label_reaches_any_method_and_worker_count_changes_nothing(tmp_path, monkeypatch):
    """Every method, leave one corpus out: shuffling the left-out corpus' labels moves its truth but
    not one prediction or probability; two workers give what one gives."""
    monkeypatch.chdir(tmp_path)
    table = feature_table()
    shuffled = table.copy()
    target = shuffled["corpus"] == "a"
    shuffled.loc[target, "valence"] = np.random.default_rng(3).permutation(shuffled.loc[target, "valence"].to_numpy())
    first = leave_one_out_predictions(table, tmp_path, "first")
    moved = leave_one_out_predictions(shuffled, tmp_path, "shuffled")
    two_workers = leave_one_out_predictions(table, tmp_path, "two", workers=2)
    assert sorted(set(first["model"])) == sorted(LEAK_MODELS) and len(first) == len(LEAK_MODELS) * int(target.sum())
    assert (first["true"] != moved["true"]).any()
    for other in (moved, two_workers):
        pd.testing.assert_frame_equal(
            first[["model", "predicted", "p_positive"]], other[["model", "predicted", "p_positive"]]
        )
