"""The SVM baselines decide as the field's class-balanced SVM does, whatever their probabilities say."""

import numpy as np
import pytest
from sklearn.svm import SVC

from crossemo.models.baselines import GroupTunedSVMValence, SparseAutoencoderSVM, SVMValence
from crossemo.models.catalog import MODELS


def imbalanced(n=400, seed=0, positive_share=0.2, shift=0.8):
    """Overlapping classes, one of them rare: where a prior-following threshold and the balanced one part."""
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n) < positive_share, "positive", "negative")
    x = rng.normal(size=(n, 6)).astype(np.float32)
    x[y == "positive", :2] += shift
    speakers = np.repeat(np.arange(n // 20), 20)
    return x, y, speakers


def test_svm_labels_are_the_class_balanced_svms_own_not_the_calibrated_argmax():
    x, y, _ = imbalanced()
    model = SVMValence(seed=0).fit(x[:300], y[:300])
    reference = SVC(class_weight="balanced", random_state=0).fit(x[:300], (y[:300] == "positive").astype(int))
    expected = np.where(reference.predict(x[300:]) == 1, "positive", "negative")
    np.testing.assert_array_equal(model.predict(x[300:]), expected)
    argmax = model.classes_[model.predict_proba(x[300:]).argmax(1)]
    # calibration learns the 80/20 prior: its argmax names the rare class less often than the SVM does
    assert (argmax == "positive").sum() < (expected == "positive").sum()


def test_sparse_autoencoder_svm_decides_by_its_balanced_svm_too():
    x, y, _ = imbalanced(seed=1)
    model = SparseAutoencoderSVM(hidden=8, epochs=5, batch_size=64, seed=0).fit(x[:300], y[:300])
    code = model._code(x[300:])
    svm = model.svm_.calibrated_classifiers_[0].estimator
    assert svm.class_weight == "balanced"
    np.testing.assert_array_equal(model.predict(x[300:]), model.classes_[svm.predict(code)])


def test_grouped_search_picks_c_and_gamma_from_its_grid_on_training_speakers_only():
    x, y, speakers = imbalanced(seed=2, shift=1.5)
    model = GroupTunedSVMValence(C_grid=(0.01, 10.0), gamma_scale_grid=(0.01, 1.0), folds=4)
    model.fit(x[:300], y[:300], groups=speakers[:300])
    scale = 1 / (x.shape[1] * x[:300].var())  # sklearn's gamma="scale" on the training rows
    assert model.C_ in (0.01, 10.0) and min(abs(model.gamma_ - m * scale) for m in (0.01, 1.0)) < 1e-9
    # C=0.01 with the smallest gamma is nearly constant: the search must have preferred a working pair
    assert (model.C_, round(model.gamma_ / scale, 6)) != (0.01, 0.01)
    svm = model.svm_.calibrated_classifiers_[0].estimator
    assert (svm.C, svm.gamma, svm.class_weight) == (model.C_, model.gamma_, "balanced")


def test_the_gamma_grid_follows_the_feature_count_so_wide_feature_sets_still_work():
    x, y, speakers = imbalanced(seed=4, shift=1.5)
    wide = np.hstack([x] * 100)  # 600 columns, as a larger openSMILE set widens the input
    narrow_model = GroupTunedSVMValence(folds=4).fit(x[:300], y[:300], groups=speakers[:300])
    wide_model = GroupTunedSVMValence(folds=4).fit(wide[:300], y[:300], groups=speakers[:300])
    assert wide_model.gamma_ == pytest.approx(narrow_model.gamma_ / 100)  # the same kernel on copied columns
    predicted = wide_model.predict(wide[300:])
    recalls = [np.mean(predicted[y[300:] == c] == c) for c in ("negative", "positive")]
    assert min(recalls) > 0.5  # both classes recognised, not a constant answer


def test_dbn_features_svm_decides_by_its_balanced_svm_on_the_stack_a_dbn_shares(tmp_path):
    import pickle

    import torch

    from crossemo.models.networks import DBNFeatureSVM, DBNValence
    from crossemo.models.stacks import StackCache

    x, y, speakers = imbalanced(seed=3, shift=1.5)
    stacks = StackCache(tmp_path)
    pretraining = dict(hidden=(12,), pretrain={"epochs": 3, "batch_size": 32}, pretrain_data="unlabeled", seed=1)
    dbn = DBNValence(**pretraining, finetune={"max_epochs": 2}, stack_store=stacks)
    dbn.fit(x[:300], y[:300], groups=speakers[:300], unlabeled=x)
    model = DBNFeatureSVM(**pretraining, stack_store=stacks).fit(x[:300], y[:300], unlabeled=x)
    assert len(list(tmp_path.rglob("*.stack"))) == 1  # one stack for the two models: the same key
    torch.testing.assert_close(model.extractor_.layers[0].weight, dbn.stack_.layers[0].weight)
    top = model.extractor_.transform(torch.from_numpy(x[300:])).numpy()
    svm = model.svm_.calibrated_classifiers_[0].estimator
    assert svm.class_weight == "balanced" and svm.n_features_in_ == 12  # the stack's units, not the features
    np.testing.assert_array_equal(model.predict(x[300:]), model.classes_[svm.predict(top)])
    again = pickle.loads(pickle.dumps(model))  # the stack travels with the model: served without the store
    np.testing.assert_array_equal(again.predict_proba(x[300:]), model.predict_proba(x[300:]))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_set_params_converts_as_init_does_refuses_unknown_names_and_clone_round_trips(name):
    from sklearn.base import clone

    model = MODELS[name]()
    copy = clone(model)
    assert type(copy) is type(model) and copy is not model
    assert copy.get_params() == model.get_params()
    with pytest.raises(ValueError, match=r"has no parameter \['c'\]"):
        model.set_params(c=10)
    assert not hasattr(model, "c")


def test_set_params_of_a_dbn_behaves_as_its_constructor():
    from crossemo.errors import ConfigError
    from crossemo.models.networks import DBNValence

    dbn = DBNValence(pretrain_data="train").set_params(pretrain_data="unlabeled")
    assert dbn.needs_unlabeled_pool and dbn.learns_from_unlabeled
    assert dbn.get_params() == DBNValence(pretrain_data="unlabeled").get_params()
    with pytest.raises(ConfigError, match="pretrain_data is 'both'"):
        dbn.set_params(pretrain_data="both")
