"""Layer-wise pretraining through the Lightning loop, fine-tuning, and the shared model interface."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import BatchSampler, RandomSampler

from crossemo.errors import UserError
from crossemo.models import stacks
from crossemo.models.catalog import make_model
from crossemo.models.labels import CLASSES
from crossemo.models.nets import FeedForward, FinetuneSettings, Precision, PretrainSettings, RBMStack, UniformDropout
from crossemo.models.networks import DBNValence, FeedForwardValence
from crossemo.models.rbm import RBM
from crossemo.models.stacks import StackCache
from crossemo.models.training import (
    LayerPretrainer,
    ValenceClassifier,
    batches,
    finetune,
    one_step_per_epoch,
    pretrain_stack,
    trainer,
    unweighted_average_recall,
)
from crossemo.models.validation import validation_split

from .conftest import log_likelihood


def toy_patterns(n: int = 400, seed: int = 0) -> torch.Tensor:
    """Two 4-bit patterns with 5% bit flips: structure an RBM can learn."""
    g = torch.Generator().manual_seed(seed)
    base = torch.tensor([[1.0, 1, 0, 0], [0, 0, 1, 1]], dtype=torch.float64)[torch.randint(0, 2, (n,), generator=g)]
    flips = torch.rand(base.shape, generator=g, dtype=torch.float64) < 0.05
    return torch.where(flips, 1 - base, base)


def test_a_few_epochs_of_cd_through_the_lightning_loop_raise_the_exact_log_likelihood():
    torch.manual_seed(0)
    rbm = RBM(4, 3, "bernoulli").double()
    data = toy_patterns()
    before = log_likelihood(rbm, data)
    settings = PretrainSettings(learning_rate=0.1, epochs=10, batch_size=20, weight_decay=0.0)
    module = LayerPretrainer(rbm, settings, batches(data, batch_size=20, shuffle=True))
    trainer(10, progress=False).fit(module, one_step_per_epoch())
    after = log_likelihood(rbm, data)
    assert after > before + 0.5, (before, after)  # nats per example; uniform is -4 ln 2 = -2.77


def test_bf16_mixed_cd_through_the_lightning_loop_also_raises_the_log_likelihood():
    torch.manual_seed(0)
    rbm = RBM(4, 3, "bernoulli")
    data = toy_patterns().float()
    before = log_likelihood(rbm.double(), data.double())
    rbm.float()
    settings = PretrainSettings(learning_rate=0.1, epochs=10, batch_size=20, weight_decay=0.0, precision="bf16-mixed")
    module = LayerPretrainer(rbm, settings, batches(data, batch_size=20, shuffle=True))
    trainer(10, progress=False).fit(module, one_step_per_epoch())
    assert rbm.weight.dtype == torch.float32  # the parameters stay float32; only the products ran in bf16
    assert log_likelihood(rbm.double(), data.double()) > before + 0.5


def test_persistent_cd_also_learns():
    torch.manual_seed(0)
    rbm = RBM(4, 3, "bernoulli").double()
    data = toy_patterns()
    before = log_likelihood(rbm, data)
    # A small rate: at 0.05 with momentum 0.9 the persistent chain oscillated and the likelihood fell
    # on 2 of 5 seeds; at 0.01 it rose by at least 0.8 nats on each of 6 seeds.
    settings = PretrainSettings(learning_rate=0.01, epochs=30, batch_size=20, weight_decay=0.0, persistent=True)
    module = LayerPretrainer(rbm, settings, batches(data, batch_size=20, shuffle=True))
    trainer(30, progress=False).fit(module, one_step_per_epoch())
    assert log_likelihood(rbm, data) > before + 0.5


def blobs(n: int = 240, d: int = 12, seed: int = 0, shift: float = 1.5):
    """Two Gaussian classes in d dimensions, with 6 'speakers'."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.standard_normal((n, d)).astype(np.float32) + shift * y[:, None] * (np.arange(d) < 4)
    return x.astype(np.float32), CLASSES[y], np.repeat([f"s{i}" for i in range(6)], n // 6)


def test_pretraining_is_greedy_with_per_layer_epochs_and_logs_per_epoch(tmp_path):
    x, _, _ = blobs()
    logger = CSVLogger(tmp_path, name="pretrain")
    settings = PretrainSettings(epochs=(0, 3, 2), batch_size=32, learning_rate=0.01)
    torch.manual_seed(0)
    untouched = RBMStack(12, (16, 8, 6)).layers[0].weight.detach().clone()
    stack = pretrain_stack(
        torch.from_numpy(x),
        (16, 8, 6),
        settings,
        held_out=torch.from_numpy(x[:40]),
        logger=logger,
        progress=False,
        seed=0,
    )
    torch.testing.assert_close(stack.layers[0].weight, untouched)  # 0 epochs: layer 0 left as initialised
    metrics = pd.read_csv(next(tmp_path.rglob("metrics.csv")))
    for layer, epochs in ((1, 3), (2, 2)):
        column = f"pretrain/layer{layer}/reconstruction_error"
        assert metrics[column].notna().sum() == epochs
        assert metrics[f"pretrain/layer{layer}/free_energy_gap"].notna().sum() == epochs
    assert "pretrain/layer0/reconstruction_error" not in metrics


def test_upper_layers_learn_from_the_activations_below():
    """Layer 1's data is layer 0's hidden probabilities: its visible biases move towards their mean."""
    x, _, _ = blobs()
    stack = pretrain_stack(
        torch.from_numpy(x),
        (16, 8),
        PretrainSettings(epochs=20, batch_size=32, learning_rate=0.05),
        progress=False,
        seed=1,
    )
    below = stack.transform(torch.from_numpy(x), layers=1).mean(0)
    reconstructed = torch.sigmoid(stack.layers[1].visible_bias.detach())
    assert float((reconstructed - below).abs().mean()) < float((0.5 - below).abs().mean())


def test_sparsity_target_lowers_the_mean_hidden_activation():
    x, _, _ = blobs()
    means = []
    for target in (None, 0.05):
        settings = PretrainSettings(
            epochs=15, batch_size=32, learning_rate=0.05, sparsity_target=target, sparsity_cost=2.0
        )
        stack = pretrain_stack(torch.from_numpy(x), (16,), settings, progress=False, seed=0)
        means.append(float(stack.transform(torch.from_numpy(x)).mean()))
    assert means[1] < means[0] - 0.1, means


def test_feed_forward_from_stack_computes_the_stack_activations():
    torch.manual_seed(0)
    stack = RBMStack(12, (16, 8))
    for rbm in stack.layers:
        torch.nn.init.normal_(rbm.weight, 0, 0.5)
    net = FeedForward.from_stack(stack)
    x = torch.randn(5, 12)
    hidden = x
    for linear in net.hidden:
        hidden = torch.sigmoid(linear(hidden))
    torch.testing.assert_close(hidden, stack.transform(x))


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_uniform_dropout_is_inverted_dropout_with_torchs_distribution(p):
    x = torch.rand(400, 500) + 0.5
    dropout = UniformDropout(p).train()
    torch.manual_seed(3)
    y = dropout(x.requires_grad_())
    kept = y != 0
    # each unit dropped with probability p (binomial sd ~0.0009 here), the rest scaled by 1 / (1 - p)
    assert abs(1 - kept.float().mean().item() - p) < 0.005
    torch.testing.assert_close(y[kept], x[kept] / (1 - p))
    assert abs(y.mean().item() / x.mean().item() - 1) < 0.01  # expectation kept, as nn.Dropout's
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / (1 - p))  # gradient flows through kept units only
    torch.manual_seed(3)
    assert torch.equal(dropout(x.detach()), y.detach())  # seeded
    assert torch.equal(dropout.eval()(x), x)
    assert torch.equal(UniformDropout(1.0).train()(x), torch.zeros_like(x))


def test_finetuning_returns_the_net_of_the_best_validation_uar(tmp_path):
    x, y, _ = blobs(seed=3, shift=0.8)
    t = torch.from_numpy
    labels = t((y == "positive").astype(np.int64))
    net = FeedForward(12, (8,))
    logger = CSVLogger(tmp_path, name="finetune")
    settings = FinetuneSettings(learning_rate=0.05, max_epochs=15, patience=15, batch_size=32)
    best = finetune(net, t(x[:160]), labels[:160], t(x[160:]), labels[160:], settings, logger=logger, progress=False)
    logged = pd.read_csv(next(tmp_path.rglob("metrics.csv")))["finetune/val_uar"].dropna()
    with torch.no_grad():
        uar = unweighted_average_recall(labels[160:], best(t(x[160:])).argmax(1), 2)
    assert len(logged) > 1  # several epochs to choose from
    assert uar == pytest.approx(logged.max())  # the returned net is the best epoch's, not the last one's


def test_bf16_mixed_finetuning_runs_the_forward_pass_in_bfloat16_and_keeps_float32_weights():
    x, y, _ = blobs(seed=3)
    t = torch.from_numpy
    labels = t((y == "positive").astype(np.int64))
    seen = set()
    results = {}
    for precision in ("32-true", "bf16-mixed"):
        torch.manual_seed(0)
        net = FeedForward(12, (8,))
        hook = net.hidden[0].register_forward_hook(lambda module, inputs, output: seen.add(output.dtype))
        settings = FinetuneSettings(
            learning_rate=0.05, max_epochs=10, min_epochs=10, batch_size=32, precision=precision
        )
        best = finetune(net, t(x[:160]), labels[:160], t(x[160:]), labels[160:], settings, progress=False)
        hook.remove()
        assert {p.dtype for p in best.parameters()} == {torch.float32}
        with torch.no_grad():
            results[precision] = best(t(x[160:]))
        assert unweighted_average_recall(labels[160:], results[precision].argmax(1), 2) > 0.8
    assert seen == {torch.float32, torch.bfloat16}  # the 32-true fit in float32, the other in bfloat16
    assert not torch.equal(results["32-true"], results["bf16-mixed"])


def test_bf16_mixed_fits_do_not_depend_on_the_torch_thread_count():
    """Each experiment worker gets cores // workers threads, and results must not depend on the
    worker count: the bfloat16 products (oneDNN) must give the same bits on one thread as on two."""
    g = torch.Generator().manual_seed(0)
    x, x_val = torch.randn(512, 88, generator=g), torch.randn(128, 88, generator=g)
    y, y_val = (x[:, 0] > 0).long(), (x_val[:, 0] > 0).long()
    pre = PretrainSettings(epochs=2, batch_size=128, precision="bf16-mixed")
    fine = FinetuneSettings(max_epochs=2, min_epochs=2, batch_size=64, precision="bf16-mixed")
    fitted, threads = [], torch.get_num_threads()
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            stack = pretrain_stack(x, (256, 512), pre, progress=False, seed=0)
            torch.manual_seed(0)
            net = finetune(FeedForward.from_stack(stack), x, y, x_val, y_val, fine, progress=False, seed=0)
            fitted.append(net.state_dict())
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(fitted[0][name], fitted[1][name]) for name in fitted[0])


def test_finetuning_takes_one_adam_step_per_mini_batch_in_the_seeded_order():
    """Lightning walks an epoch per training_step, with fused Adam: the same updates as a plain loop
    over the same seeded mini-batches with PyTorch's reference (single-tensor) Adam."""
    x, y, _ = blobs(seed=4, shift=0.8)
    t = torch.from_numpy
    labels = t((y == "positive").astype(np.int64))
    x_train, y_train, x_val, y_val = t(x[:160]), labels[:160], t(x[160:]), labels[160:]
    settings = FinetuneSettings(learning_rate=0.02, max_epochs=5, min_epochs=5, patience=50, batch_size=24)
    torch.manual_seed(1)
    net = FeedForward(12, (8, 6))
    reference = copy.deepcopy(net)
    tuned = finetune(net, x_train, y_train, x_val, y_val, settings, progress=False, seed=7)

    counts = torch.bincount(y_train, minlength=2).float()
    weights = counts.sum() / (2 * counts)
    optimizer = torch.optim.Adam(reference.parameters(), lr=0.02, foreach=False)
    order = BatchSampler(RandomSampler(range(160), generator=torch.Generator().manual_seed(7)), 24, False)
    best_uar, best_state, steps = -1.0, None, 0
    for _ in range(5):
        for rows in order:
            loss = torch.nn.functional.cross_entropy(reference(x_train[rows]), y_train[rows], weight=weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
        with torch.no_grad():
            uar = unweighted_average_recall(y_val, reference(x_val).argmax(1), 2)
        if uar > best_uar:
            best_uar, best_state = uar, copy.deepcopy(reference.state_dict())
    reference.load_state_dict(best_state)
    assert steps == 5 * 7  # ceil(160 / 24) mini-batches an epoch
    for ours, theirs in zip(tuned.state_dict().values(), reference.state_dict().values()):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


def test_validation_split_is_speaker_disjoint():
    _, y, speakers = blobs()
    train, val = validation_split(y, speakers, 0.34, seed=0)
    assert set(speakers[train]).isdisjoint(speakers[val]) and len(val) > 0
    assert len(train) + len(val) == len(y)


@pytest.mark.parametrize(
    "name,params",
    [
        ("svm", {}),
        ("svm_cv", {"C_grid": (0.1, 1.0), "gamma_scale_grid": (0.3, 3.0), "folds": 3}),
        ("sae_svm", {"hidden": 16, "epochs": 20}),
        ("dbn_svm", {"hidden": (16,), "pretrain": {"epochs": 10, "batch_size": 32, "learning_rate": 0.01}}),
        ("mlp", {"hidden": (16,), "finetune": {"max_epochs": 30, "learning_rate": 0.01}}),
        (
            "dbn",
            {
                "hidden": (16, 8),
                "pretrain": {"epochs": 5, "batch_size": 32, "learning_rate": 0.01},
                "finetune": {"max_epochs": 30, "learning_rate": 0.01},
            },
        ),
    ],
)
def test_every_model_learns_a_separable_problem_through_one_interface(name, params):
    x, y, speakers = blobs(n=300, seed=5, shift=2.5)
    model = make_model(name, seed=0, **params).fit(x[:240], y[:240], groups=speakers[:240], unlabeled=x[240:])
    proba = model.predict_proba(x[240:])
    assert proba.shape == (60, 2) and np.allclose(proba.sum(1), 1, atol=1e-5)
    predicted = model.predict(x[240:])
    assert set(predicted) <= set(CLASSES)
    recalls = [np.mean(predicted[y[240:] == c] == c) for c in CLASSES]
    assert np.mean(recalls) > 0.85, (name, recalls)


def test_same_seed_same_predictions_and_unknown_labels_rejected():
    x, y, speakers = blobs(n=120)
    params = dict(hidden=(8,), pretrain={"epochs": 2, "batch_size": 32}, finetune={"max_epochs": 5}, seed=4)
    a = DBNValence(**params).fit(x, y, groups=speakers).predict_proba(x)
    b = DBNValence(**params).fit(x, y, groups=speakers).predict_proba(x)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(UserError, match="unknown valence labels.*excluded"):
        DBNValence(**params).fit(x, np.where(y == "positive", "excluded", y))
    with pytest.raises(ValueError, match="unknown model"):
        make_model("rbf_net")


def test_pretrain_settings_reject_bad_combinations():
    with pytest.raises(ValueError, match="cd_steps"):
        PretrainSettings(cd_steps=0)
    with pytest.raises(ValueError, match="sparsity_target"):
        PretrainSettings(sparsity_target=1.5)
    with pytest.raises(ValueError, match="lists 2 layers"):
        PretrainSettings(epochs=[1, 2]).epochs_for(0, 3)
    for settings, owner in ((PretrainSettings, "pretrain"), (FinetuneSettings, "finetune")):
        with pytest.raises(ValueError, match=f"{owner}.precision is '16-mixed'; use one of 32-true, bf16-mixed"):
            settings(precision="16-mixed")
        assert settings(precision="bf16-mixed").precision is Precision.BF16_MIXED


def test_pretrained_stacks_are_cached_by_their_inputs(tmp_path, monkeypatch):
    import crossemo.models.training as training

    x, y, speakers = blobs(n=120)
    calls = []
    real = training.pretrain_stack
    monkeypatch.setattr(training, "pretrain_stack", lambda *a, **k: calls.append(1) or real(*a, **k))
    params = dict(
        hidden=(8,),
        pretrain={"epochs": 2, "batch_size": 32},
        finetune={"max_epochs": 3},
        pretrain_data="unlabeled",
        stack_store=StackCache(tmp_path),
    )
    pool = x[::2]
    first = DBNValence(seed=1, **params).fit(x, y, groups=speakers, unlabeled=pool)
    second = DBNValence(seed=1, **params).fit(x[:60], y[:60], groups=speakers[:60], unlabeled=pool)
    assert len(calls) == 1  # same pool, settings and seed: pretrained once
    torch.testing.assert_close(first.stack_.layers[0].weight, second.stack_.layers[0].weight)
    DBNValence(seed=2, **params).fit(x, y, groups=speakers, unlabeled=pool)
    DBNValence(seed=1, **params).fit(x, y, groups=speakers, unlabeled=pool + 1)
    assert len(calls) == 3
    bf16 = {**params, "pretrain": {**params["pretrain"], "precision": "bf16-mixed"}}
    DBNValence(seed=1, **bf16).fit(x, y, groups=speakers, unlabeled=pool)
    assert len(calls) == 4  # another arithmetic, another stack
    monkeypatch.setattr(stacks, "stack_code_fingerprint", lambda: "rbm.py edited")
    DBNValence(seed=1, **params).fit(x, y, groups=speakers, unlabeled=pool)
    assert len(calls) == 5  # the code that makes stacks changed: the warm cache is not used
    with pytest.raises(ValueError, match="no unlabeled rows"):
        DBNValence(**params).fit(x, y, groups=speakers)


KEY_SCRIPT = """
import numpy as np
from crossemo.models.nets import PretrainSettings
from crossemo.models.stacks import stack_key
print(stack_key(np.ones((4, 3), np.float32), (2,), PretrainSettings(), 0))
"""


def test_a_stack_key_changes_with_the_code_that_makes_stacks_and_only_with_it(tmp_path):
    """Edits in a copy of the package, each keyed in a fresh process (as a new session would)."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import crossemo

    def key_after(edit: str | None) -> str:
        copy = tmp_path / (edit or "unchanged")
        shutil.copytree(Path(crossemo.__file__).parent, copy / "crossemo")
        if edit:
            with open(copy / "crossemo" / edit, "a") as source:
                source.write("\n# an edit\n")
        env = {"PYTHONPATH": str(copy), "PATH": ""}
        done = subprocess.run([sys.executable, "-c", KEY_SCRIPT], env=env, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    unchanged = key_after(None)
    assert key_after("models/rbm.py") != unchanged and key_after("models/training.py") != unchanged
    assert key_after("experiments/report.py") == unchanged


def test_an_ensemble_averages_members_fine_tuned_from_one_stack_on_different_held_out_speakers():
    x, y, speakers = blobs(n=180, seed=3)
    params = dict(
        hidden=(8,), pretrain={"epochs": 3, "batch_size": 32}, finetune={"max_epochs": 6, "min_epochs": 2}, seed=2
    )
    single = DBNValence(**params).fit(x, y, groups=speakers)
    ensemble = DBNValence(**params, ensemble=3).fit(x, y, groups=speakers)
    assert len(ensemble.nets_) == 3
    # the first member is the single net of the same seed; the stack is pretrained once and shared
    np.testing.assert_allclose(
        ensemble.nets_[0](torch.from_numpy(x)).detach(), single.nets_[0](torch.from_numpy(x)).detach()
    )
    first_layers = [net.hidden[0].weight for net in ensemble.nets_]
    assert not torch.equal(first_layers[0], first_layers[1])  # fine-tuned apart
    members = torch.stack([torch.softmax(net(torch.from_numpy(x)), 1) for net in ensemble.nets_]).mean(0)
    np.testing.assert_allclose(ensemble.predict_proba(x), members.detach().numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="ensemble must be at least 1"):
        DBNValence(ensemble=0)


def test_members_may_start_from_stacks_pretrained_with_their_own_seeds(tmp_path):
    from crossemo.models.stacks import StackCache

    x, y, speakers = blobs(n=180, seed=3)
    inputs = torch.from_numpy(x)
    params = dict(hidden=(8,), pretrain={"epochs": 3, "batch_size": 32}, finetune={"max_epochs": 4, "min_epochs": 2})
    shared = DBNValence(**params, ensemble=3, seed=2, stack_store=StackCache(tmp_path / "shared"))
    own = DBNValence(**params, ensemble=3, seed=2, member_stacks="own", stack_store=StackCache(tmp_path / "own"))
    shared.fit(x, y, groups=speakers)
    own.fit(x, y, groups=speakers)
    assert len(list((tmp_path / "shared").glob("*.stack"))) == 1
    assert len(list((tmp_path / "own").glob("*.stack"))) == 3
    torch.testing.assert_close(own.nets_[0](inputs), shared.nets_[0](inputs))  # member 0: the model's own stack
    # member 1 (seed 1002) is the single net a model of seed 1002 fits: its split, its stack, its head
    alone = DBNValence(**params, seed=1002).fit(x, y, groups=speakers)
    torch.testing.assert_close(own.nets_[1](inputs), alone.nets_[0](inputs))
    assert not torch.equal(shared.nets_[1](inputs), own.nets_[1](inputs))
    with pytest.raises(UserError, match="member_stacks.*shared, own"):
        DBNValence(member_stacks="each")


def test_input_noise_changes_the_fit_and_stays_seeded():
    x, y, speakers = blobs(n=120, seed=4)
    fit = lambda noise: (
        FeedForwardValence(hidden=(8,), finetune={"max_epochs": 5, "min_epochs": 5, "input_noise": noise}, seed=1)
        .fit(x, y, groups=speakers)
        .predict_proba(x)
    )
    np.testing.assert_array_equal(fit(0.5), fit(0.5))
    assert not np.allclose(fit(0.5), fit(0.0))


def test_mixup_trains_on_a_mixture_of_two_rows_and_of_their_labels():
    """The batch loss is share * CE(mixed, own label) + (1 - share) * CE(mixed, partner's label),
    share ~ Beta(alpha, alpha) and partners a permutation, both from torch's seeded generator."""
    torch.manual_seed(0)
    net = FeedForward(3, (4,))
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 1, 0, 1, 0])
    weights = torch.tensor([1.0, 2.0])
    settings = FinetuneSettings(mixup_alpha=0.4)
    module = ValenceClassifier(net, settings, weights, data=None, validation=None)
    torch.manual_seed(3)
    loss = module._loss(x, y)
    torch.manual_seed(3)
    share = float(torch.distributions.Beta(torch.tensor(0.4), torch.tensor(0.4)).sample())
    partner = torch.randperm(6)
    logits = net(share * x + (1 - share) * x[partner])
    ce = torch.nn.functional.cross_entropy
    expected = share * ce(logits, y, weight=weights) + (1 - share) * ce(logits, y[partner], weight=weights)
    torch.testing.assert_close(loss, expected)
    assert not torch.allclose(loss, ce(net(x), y, weight=weights))
    with pytest.raises(UserError, match="mixup_alpha is -1"):
        FinetuneSettings(mixup_alpha=-1)


def test_without_validation_rows_finetuning_runs_max_epochs_and_keeps_the_last_weights(tmp_path):
    """validation_fraction 0: no early stopping, no best-epoch choice; the same updates as a plain
    loop of exactly max_epochs over the seeded mini-batches."""
    x, y, _ = blobs(seed=5, shift=0.8)
    t = torch.from_numpy
    labels = t((y == "positive").astype(np.int64))
    settings = FinetuneSettings(learning_rate=0.02, max_epochs=4, min_epochs=1, patience=1, batch_size=32)
    settings = FinetuneSettings(**{**settings.__dict__, "validation_fraction": 0.0})
    torch.manual_seed(2)
    net = FeedForward(12, (8,))
    reference = copy.deepcopy(net)
    logger = CSVLogger(tmp_path, name="finetune")
    tuned = finetune(net, t(x), labels, t(x[:0]), labels[:0], settings, logger=logger, progress=False, seed=3)

    counts = torch.bincount(labels, minlength=2).float()
    optimizer = torch.optim.Adam(reference.parameters(), lr=0.02, foreach=False)
    order = BatchSampler(RandomSampler(range(len(x)), generator=torch.Generator().manual_seed(3)), 32, False)
    for _ in range(4):
        for rows in order:
            loss = torch.nn.functional.cross_entropy(
                reference(t(x)[rows]), labels[rows], weight=counts.sum() / (2 * counts)
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    for ours, theirs in zip(tuned.state_dict().values(), reference.state_dict().values()):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    logged = pd.read_csv(next(tmp_path.rglob("metrics.csv")))
    assert logged["finetune/train_loss"].notna().sum() == 4 and "finetune/val_loss" not in logged
    for bad in (1.0, -0.1):
        with pytest.raises(UserError, match="finetune.validation_fraction is .*or 0 for no early stopping"):
            FinetuneSettings(validation_fraction=bad)


def test_without_early_stopping_every_member_fits_every_training_row(monkeypatch):
    import crossemo.models.training as training

    seen = []

    def spy(net, x, y, x_val, y_val, *args):
        seen.append((len(x), len(x_val)))
        return real(net, x, y, x_val, y_val, *args)

    real = training.finetune
    monkeypatch.setattr(training, "finetune", spy)
    x, y, speakers = blobs(n=120, seed=6)
    fine = {"max_epochs": 3, "validation_fraction": 0.0}
    model = DBNValence(hidden=(8,), pretrain={"epochs": 2, "batch_size": 32}, finetune=fine, ensemble=2, seed=1)
    model.fit(x, y, groups=speakers)
    assert seen == [(120, 0), (120, 0)]
    members = [net.head.weight.detach() for net in model.nets_]
    assert not torch.equal(*members)  # the members still differ: their seeds
    seen.clear()
    DBNValence(hidden=(8,), pretrain={"epochs": 2, "batch_size": 32}, finetune={"max_epochs": 3}, seed=1).fit(
        x, y, groups=speakers
    )
    assert seen[0][1] > 0 and sum(seen[0]) == 120  # the default holds speakers out


def test_members_may_stop_on_a_whole_training_corpus_each_in_turn(monkeypatch):
    import crossemo.models.training as training

    held_out = []

    def spy(net, x, y, x_val, y_val, *args):
        held_out.append(x_val.numpy())
        return real(net, x, y, x_val, y_val, *args)

    real = training.finetune
    monkeypatch.setattr(training, "finetune", spy)
    x, y, speakers = blobs(n=180, seed=7)
    two_corpora = np.where(np.isin(speakers, ["s0", "s1", "s2"]), "a/", "b/") + speakers
    params = dict(hidden=(8,), pretrain={"epochs": 2, "batch_size": 32}, finetune={"max_epochs": 3}, seed=1)
    DBNValence(**params, ensemble=3, validate_on="corpus").fit(x, y, groups=two_corpora)
    corpus_a, corpus_b = x[two_corpora < "b"], x[two_corpora >= "b"]
    assert [len(rows) for rows in held_out] == [90, 90, 90]
    for rows, corpus in zip(held_out, (corpus_a, corpus_b, corpus_a)):
        np.testing.assert_array_equal(rows, corpus)
    # one corpus: the members hold out speakers, exactly as by default
    held_out.clear()
    one_corpus = "a/" + speakers
    by_corpus = DBNValence(**params, ensemble=2, validate_on="corpus").fit(x, y, groups=one_corpus)
    by_speakers = DBNValence(**params, ensemble=2).fit(x, y, groups=one_corpus)
    np.testing.assert_array_equal(by_corpus.predict_proba(x), by_speakers.predict_proba(x))
    assert 0 < len(held_out[0]) < 90
    with pytest.raises(UserError, match="validate_on.*speakers, corpus"):
        FeedForwardValence(validate_on="corpora")


def test_weight_averaging_returns_the_mean_of_the_weights_of_every_epoch_from_swa_start():
    from lightning.pytorch import Callback

    x, y, _ = blobs(seed=5, shift=0.8)
    t = torch.from_numpy
    labels = t((y == "positive").astype(np.int64))
    epochs = []

    class EveryEpoch(Callback):  # each Lightning step of finetune is one epoch
        def on_train_batch_end(self, trainer, module, *args):
            epochs.append({k: v.detach().clone() for k, v in module.net.state_dict().items()})

    settings = FinetuneSettings(learning_rate=0.02, max_epochs=5, min_epochs=5, patience=50, batch_size=32, swa_start=3)
    torch.manual_seed(2)
    net = FeedForward(12, (8,))
    tuned = finetune(net, t(x[:160]), labels[:160], t(x[160:]), labels[160:], settings, None, False, 3, [EveryEpoch()])
    assert len(epochs) == 5
    for name, value in tuned.state_dict().items():  # epochs 3, 4 and 5
        torch.testing.assert_close(value, torch.stack([weights[name] for weights in epochs[2:]]).mean(0))
    assert not torch.equal(tuned.head.weight, epochs[-1]["head.weight"])
    with pytest.raises(UserError, match=r"finetune.swa_start is 40; .* from 1 to 30 \(min_epochs"):
        FinetuneSettings(min_epochs=30, swa_start=40)
    FinetuneSettings(min_epochs=30, max_epochs=50, swa_start=40, validation_fraction=0.0)  # runs 50 epochs
    with pytest.raises(UserError, match="finetune.swa_start is 60; .* from 1 to 50"):
        FinetuneSettings(min_epochs=30, max_epochs=50, swa_start=60, validation_fraction=0.0)
