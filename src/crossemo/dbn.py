"""Deep Belief Network: greedy layer-wise RBM pretraining (a Lightning custom loop), then fine-tuning.

`RBMStack` and `FeedForward` are plain modules; the LightningModules `LayerPretrainer` and
`ValenceClassifier` own the training rules, losses and metrics.
"""

from __future__ import annotations

import functools
import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

from .errors import ConfigError, choice
from .rbm import RBM, VisibleUnits

log = logging.getLogger(__name__)


class Precision(StrEnum):
    """The arithmetic of a training loop (Lightning's names). Parameters, optimiser state, sampling
    and the statistics handed to the optimiser stay in float32 either way; bf16-mixed only runs the
    matrix products in bfloat16, about twice the float32 rate on CPUs with AVX512-BF16 or AMX."""

    FULL = "32-true"
    BF16_MIXED = "bf16-mixed"

    @property
    def compute_dtype(self) -> torch.dtype:
        return torch.bfloat16 if self is Precision.BF16_MIXED else torch.float32


def precision_of(value: str, owner: str) -> Precision:
    """`value` as a Precision; anything else is refused naming the setting and the choices."""
    precision = choice(Precision, value, f"{owner}.precision")
    if precision is Precision.BF16_MIXED and not native_bf16():
        _warn_emulated_bf16(owner)
    return precision


@functools.cache
def native_bf16() -> bool:
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


@functools.cache  # once per process, not once per fit
def _warn_emulated_bf16(owner: str) -> None:
    # still correct, only slower: bfloat16 products are emulated without these instructions
    log.warning("%s.precision is bf16-mixed but this CPU has no AVX512-BF16 or AMX: 32-true is faster here", owner)


@dataclass(frozen=True)
class PretrainSettings:
    """Contrastive-divergence training of each RBM (defaults: Hinton's practical guide where the paper is silent)."""

    learning_rate: float = 1e-3
    epochs: int | tuple[int, ...] = 500  # one number for every layer, or one per layer
    cd_steps: int = 1
    persistent: bool = False  # persistent CD: the negative chain carries over between batches
    momentum: float = 0.9  # 0.5 for the first `momentum_warmup` epochs, then this (guide, sec. 9)
    momentum_warmup: int = 5
    weight_decay: float = 2e-4  # L2 on the weights only (guide, sec. 10)
    sparsity_target: float | None = None  # desired mean hidden activation (guide, sec. 11)
    sparsity_cost: float = 0.0
    batch_size: int = 256
    precision: Precision = Precision.FULL  # of the CD products (statistics are accumulated in float32)

    def __post_init__(self):
        object.__setattr__(self, "precision", precision_of(self.precision, "pretrain"))
        if self.cd_steps < 1:
            raise ConfigError(f"cd_steps must be at least 1, not {self.cd_steps}")
        if self.sparsity_target is not None and not 0 < self.sparsity_target < 1:
            raise ConfigError(f"sparsity_target must lie in (0, 1), not {self.sparsity_target}")
        if isinstance(self.epochs, list):
            object.__setattr__(self, "epochs", tuple(self.epochs))

    def epochs_for(self, layer: int, n_layers: int) -> int:
        if isinstance(self.epochs, tuple):
            if len(self.epochs) != n_layers:
                raise ConfigError(f"pretrain.epochs lists {len(self.epochs)} layers but the stack has {n_layers}")
            return self.epochs[layer]
        return self.epochs


class RBMStack(nn.Module):
    """Gaussian-Bernoulli bottom layer on standardised features, Bernoulli-Bernoulli above."""

    def __init__(self, n_inputs: int, hidden: tuple[int, ...]):
        super().__init__()
        sizes = (n_inputs, *hidden)
        self.layers = nn.ModuleList(
            RBM(v, h, VisibleUnits.GAUSSIAN if i == 0 else VisibleUnits.BERNOULLI)
            for i, (v, h) in enumerate(zip(sizes, sizes[1:]))
        )

    @torch.no_grad()
    def transform(self, x: torch.Tensor, layers: int | None = None) -> torch.Tensor:
        """Hidden probabilities after the first `layers` RBMs (all by default): the next layer's data."""
        for rbm in list(self.layers)[:layers]:
            x = rbm.hidden_probs(x)
        return x


def batches(*tensors: torch.Tensor, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """Whole batches by tensor indexing: a per-row collate would cost more than the CD step. Each
    pass draws a new order from the one seeded generator."""
    dataset = TensorDataset(*tensors)
    order = (
        RandomSampler(dataset, generator=torch.Generator().manual_seed(seed)) if shuffle else SequentialSampler(dataset)
    )
    return DataLoader(dataset, batch_size=None, sampler=BatchSampler(order, batch_size, drop_last=False))


def one_step_per_epoch() -> DataLoader:
    """The loader Lightning walks: one item an epoch, so `training_step` runs once per epoch and the
    module walks that epoch's mini-batches itself. Lightning's per-step machinery (fetching, hooks,
    logging) cost more than a whole step of these small nets (bench/finetuning.py); per epoch it is
    noise. The mini-batches, their order and the updates are the same as one step per batch."""
    # Its own generator: a loader without one draws a seed from the global stream each epoch, which
    # would shift the CD samples and dropout masks drawn from it.
    return DataLoader([0], batch_size=None, generator=torch.Generator())


def gradient_epoch(module: L.LightningModule, data: DataLoader, loss_of) -> torch.Tensor:
    """One epoch of manual optimisation: a step of the module's optimiser on `loss_of(*batch)` per
    mini-batch of `data`. Returns the epoch's mean loss, weighted by rows."""
    optimizer, total, rows = module.optimizers(), torch.zeros(()), 0
    for batch in data:
        loss = loss_of(*batch)
        optimizer.zero_grad()
        module.manual_backward(loss)
        optimizer.step()
        total, rows = total + loss.detach() * len(batch[0]), rows + len(batch[0])
    return total / rows


class LayerPretrainer(L.LightningModule):
    """Trains one RBM by CD-k / PCD with manual optimisation: the gradient is the CD statistic itself."""

    def __init__(
        self,
        rbm: RBM,
        settings: PretrainSettings,
        data: DataLoader,
        layer: int = 0,
        held_out: torch.Tensor | None = None,
        monitor_rows: int = 512,
    ):
        super().__init__()
        self.automatic_optimization = False
        self.rbm, self.settings, self.layer, self.data = rbm, settings, layer, data
        self.held_out = held_out[:monitor_rows] if held_out is not None else None
        self.monitor_rows = monitor_rows
        self.chain: torch.Tensor | None = None
        self.mean_activation: torch.Tensor | None = None
        self._epoch_error, self._epoch_batches = 0.0, 0
        self._seen: list[torch.Tensor] = []

    def configure_optimizers(self):
        s = self.settings
        return torch.optim.SGD(
            [
                {"params": [self.rbm.weight], "weight_decay": s.weight_decay},
                {"params": [self.rbm.visible_bias, self.rbm.hidden_bias], "weight_decay": 0.0},
            ],
            lr=s.learning_rate,
            momentum=0.5,
            fused=True,  # one kernel per parameter instead of a pass per operation: the same update
        )

    def on_train_epoch_start(self):
        momentum = 0.5 if self.current_epoch < self.settings.momentum_warmup else self.settings.momentum
        for group in self.optimizers().optimizer.param_groups:
            group["momentum"] = momentum
        self._epoch_error, self._epoch_batches = 0.0, 0

    def training_step(self, batch, epoch_step):
        """One epoch: a CD update per mini-batch of `data` (see `one_step_per_epoch`)."""
        for batch_index, (v0,) in enumerate(self.data):
            self._cd_update(v0, batch_index)

    def _cd_update(self, v0: torch.Tensor, batch_index: int):
        s = self.settings
        chain = None
        if s.persistent:
            if self.chain is None or self.chain.shape[0] != v0.shape[0]:
                self.chain = v0.clone()
            chain = self.chain
        stats = self.rbm.contrastive_divergence(v0, k=s.cd_steps, chain=chain, dtype=s.precision.compute_dtype)
        if s.persistent:
            self.chain = stats.chain_end
        hidden_grad = stats.hidden_bias
        weight_grad = stats.weight
        if s.sparsity_target is not None and s.sparsity_cost > 0:
            # Push a running mean of each unit's activation towards the target (guide, sec. 11.1).
            q = stats.hidden_probs.mean(0)
            self.mean_activation = q if self.mean_activation is None else 0.95 * self.mean_activation + 0.05 * q
            penalty = s.sparsity_cost * (s.sparsity_target - self.mean_activation)
            hidden_grad = hidden_grad + penalty
            weight_grad = weight_grad + v0.mean(0)[:, None] * penalty[None, :]
        optimizer = self.optimizers()
        # SGD descends: hand it the negative of the log-likelihood's ascent direction (negated in
        # place: the statistics are this step's own tensors).
        self.rbm.weight.grad = weight_grad.neg_()
        self.rbm.visible_bias.grad = stats.visible_bias.neg_()
        self.rbm.hidden_bias.grad = hidden_grad.neg_()
        optimizer.step()
        if stats.reconstruction is not None:
            self._epoch_error += float(stats.reconstruction.sub_(v0).square_().mean())
            self._epoch_batches += 1
        if batch_index == 0:
            self._seen = [v0[: self.monitor_rows]]

    def on_train_epoch_end(self):
        name = f"pretrain/layer{self.layer}"
        metrics = {}
        if self._epoch_batches:
            metrics[f"{name}/reconstruction_error"] = self._epoch_error / self._epoch_batches
        if self.held_out is not None and self._seen:
            # Free-energy gap between training and held-out data: it grows when the RBM overfits (guide, sec. 6).
            with torch.no_grad():
                gap = self.rbm.free_energy(self.held_out).mean() - self.rbm.free_energy(self._seen[0]).mean()
            metrics[f"{name}/free_energy_gap"] = float(gap)
        if metrics:
            self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=True)


@contextmanager
def quiet_lightning(progress: bool):
    """For one fit: hide a deprecation warning raised inside Lightning 2.6 on torch 2.13 at every fit
    (nothing for our users to act on) and, when quiet, Lightning's device banner and tips; both are
    restored afterwards, so the caller's own warning and logging settings stand."""
    lightning_log = logging.getLogger("lightning.pytorch")
    level = lightning_log.level
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
        if not progress:
            lightning_log.setLevel(logging.WARNING)
        try:
            yield
        finally:
            lightning_log.setLevel(level)


def trainer(max_epochs: int, logger=None, progress: bool = True, callbacks=None, **kwargs) -> L.Trainer:
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=logger if logger is not None else False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress,
        callbacks=callbacks,
        num_sanity_val_steps=0,
        deterministic=True,
        log_every_n_steps=1,
        **kwargs,
    )


def pretrain_stack(
    x: torch.Tensor,
    hidden: tuple[int, ...],
    settings: PretrainSettings,
    held_out: torch.Tensor | None = None,
    logger=None,
    progress: bool = True,
    seed: int = 0,
) -> RBMStack:
    """Greedy layer-wise pretraining: layer i learns the hidden activations of the trained layers below it."""
    L.seed_everything(seed, workers=False, verbose=False)
    stack = RBMStack(x.shape[1], tuple(hidden))
    data, monitor = x, held_out
    for i, rbm in enumerate(stack.layers):
        epochs = settings.epochs_for(i, len(stack.layers))
        if epochs > 0:
            log.info("pretraining layer %d (%d x %d) for %d epochs", i, rbm.n_visible, rbm.n_hidden, epochs)
            layer_data = batches(data, batch_size=settings.batch_size, shuffle=True, seed=seed + i)
            module = LayerPretrainer(rbm, settings, layer_data, layer=i, held_out=monitor)
            with quiet_lightning(progress):
                trainer(epochs, logger, progress).fit(module, one_step_per_epoch())
        data = rbm.hidden_probs(data).detach()
        monitor = rbm.hidden_probs(monitor).detach() if monitor is not None else None
    return stack


class UniformDropout(nn.Dropout):
    """Inverted dropout (`nn.Dropout`'s, same distribution) whose mask compares float32 uniform draws
    with p. On CPU torch's own draws each element's Bernoulli from a double: twice as long for a
    forward and backward pass, a sixth of a dbn_best member's training step (bench/finetuning.py)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if self.p == 1:
            return x * 0
        keep = torch.rand(x.shape, device=x.device) >= self.p  # float32 even under bfloat16 autocast
        return x * (keep.to(x.dtype) * (1 / (1 - self.p)))


class FeedForward(nn.Module):
    """Sigmoid layers as in the RBMs, then a linear head over the classes."""

    def __init__(self, n_inputs: int, hidden: tuple[int, ...], n_classes: int = 2, dropout: float = 0.0):
        super().__init__()
        sizes = (n_inputs, *hidden)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.dropout = UniformDropout(dropout)  # models saved with nn.Dropout load and predict alike
        self.head = nn.Linear(sizes[-1], n_classes)

    @classmethod
    def from_stack(cls, stack: RBMStack, n_classes: int = 2, dropout: float = 0.0) -> FeedForward:
        net = cls(stack.layers[0].n_visible, tuple(r.n_hidden for r in stack.layers), n_classes, dropout)
        with torch.no_grad():
            for linear, rbm in zip(net.hidden, stack.layers):
                linear.weight.copy_(rbm.weight.t())
                linear.bias.copy_(rbm.hidden_bias)
        return net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for linear in self.hidden:
            x = self.dropout(torch.sigmoid(linear(x)))
        return self.head(x)


@dataclass(frozen=True)
class FinetuneSettings:
    learning_rate: float = 1e-3
    max_epochs: int = 200
    patience: int = 20  # epochs without a lower validation loss before stopping
    min_epochs: int = 10  # small corpora give few steps per epoch: never stop before this
    batch_size: int = 64
    weight_decay: float = 0.0
    dropout: float = 0.0
    input_noise: float = 0.0  # std of Gaussian noise added to the (standardised) inputs of each training batch
    # Of the training speakers, held out for early stopping. 0: no early stopping, every training
    # row for exactly max_epochs (a validation split of a few speakers picks its epoch by chance).
    validation_fraction: float = 0.2
    precision: Precision = Precision.FULL  # Lightning's: bf16-mixed autocasts the forward pass
    # 0: keep the weights of the best validation UAR. k >= 1: the mean of the weights at the end of
    # every epoch from the k-th to the last (stochastic weight averaging), whatever the validation says.
    swa_start: int = 0

    def __post_init__(self):
        object.__setattr__(self, "precision", precision_of(self.precision, "finetune"))
        surely_run = min(self.min_epochs, self.max_epochs) if self.early_stopping else self.max_epochs
        if not 0 <= self.swa_start <= surely_run:
            raise ConfigError(
                f"finetune.swa_start is {self.swa_start}; use 0 (no averaging) or an epoch from 1 to "
                f"{surely_run} (min_epochs, or max_epochs without early stopping): training may end there"
            )
        if not 0 <= self.validation_fraction < 1:
            raise ConfigError(
                f"finetune.validation_fraction is {self.validation_fraction}; use a fraction of the training"
                " speakers below 1, or 0 for no early stopping (max_epochs on every training row)"
            )

    @property
    def early_stopping(self) -> bool:
        return self.validation_fraction > 0


class ValenceClassifier(L.LightningModule):
    """Class-weighted cross-entropy; validation loss (for early stopping) and UAR (unweighted average
    recall: the weights of its best epoch are kept).

    Each Lightning step is a whole epoch (see `one_step_per_epoch`): an Adam step per mini-batch of
    `data`, then one pass over all validation rows, logged in one call. Lightning's validation loop
    cost more per epoch than the epoch itself on the demo-size nets (bench/finetuning.py). Without
    validation rows (`validation` None) only the training loss is logged and the last weights stand.
    With `settings.swa_start` the epochs' weights from then on are averaged (`average_`) instead.
    """

    def __init__(
        self,
        net: FeedForward,
        settings: FinetuneSettings,
        class_weights: torch.Tensor,
        data: DataLoader,
        validation: tuple[torch.Tensor, torch.Tensor] | None,
    ):
        super().__init__()
        self.automatic_optimization = False
        self.net, self.settings, self.data, self.validation = net, settings, data, validation
        self.register_buffer("class_weights", class_weights)
        self.best_uar_, self.best_state_ = -1.0, None
        self.average_ = AveragedModel(net) if settings.swa_start else None

    def forward(self, x):
        return self.net(x)

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.settings.input_noise > 0:  # other corpora's recordings differ: do not fit one corpus' exact values
            x = x + self.settings.input_noise * torch.randn_like(x)
        return F.cross_entropy(self.net(x), y, weight=self.class_weights)

    def training_step(self, batch, epoch_step):
        train_loss = gradient_epoch(self, self.data, self._loss)
        if self.average_ is not None and self.current_epoch + 1 >= self.settings.swa_start:
            self.average_.update_parameters(self.net)
        if self.validation is None:
            self.log("finetune/train_loss", train_loss)
            return
        val_loss, val_uar = self._validate()
        self.log_dict({"finetune/train_loss": train_loss, "finetune/val_loss": val_loss})
        self.log("finetune/val_uar", val_uar, prog_bar=True)

    @torch.no_grad()
    def _validate(self) -> tuple[torch.Tensor, float]:
        x, y = self.validation
        self.net.eval()
        logits = self.net(x)
        self.net.train()
        uar = unweighted_average_recall(y, logits.argmax(1), self.net.head.out_features)
        if uar > self.best_uar_:  # keep the best checkpoint in memory: the nets are small
            self.best_uar_ = uar
            self.best_state_ = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        return F.cross_entropy(logits, y, weight=self.class_weights), uar

    def configure_optimizers(self):
        # fused: the same Adam in one kernel per parameter; on these nets the default (foreach) Adam
        # took longer than the forward and backward passes together (bench/finetuning.py)
        return torch.optim.Adam(
            self.net.parameters(), lr=self.settings.learning_rate, weight_decay=self.settings.weight_decay, fused=True
        )


def unweighted_average_recall(true: torch.Tensor, pred: torch.Tensor, n_classes: int) -> float:
    """Mean of the per-class recalls over the classes present in `true`."""
    recalls = [float((pred[true == c] == c).float().mean()) for c in range(n_classes) if (true == c).any()]
    return float(np.mean(recalls)) if recalls else 0.0


def finetune(
    net: FeedForward,
    x: torch.Tensor,
    y: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    settings: FinetuneSettings,
    logger=None,
    progress: bool = True,
    seed: int = 0,
    callbacks: list | None = None,
) -> FeedForward:
    """Supervised training that stops on the validation loss and returns the net at its best
    validation-UAR epoch; without validation rows, the net after exactly max_epochs; with
    `settings.swa_start`, the mean of its weights over the epochs from then on."""
    L.seed_everything(seed, workers=False, verbose=False)
    counts = torch.bincount(y, minlength=net.head.out_features).clamp(min=1).float()
    train = batches(x, y, batch_size=settings.batch_size, shuffle=True, seed=seed)
    validation = (x_val, y_val) if len(x_val) else None
    module = ValenceClassifier(net, settings, counts.sum() / (len(counts) * counts), train, validation)
    if validation:
        # Stop on the validation loss, which keeps falling while UAR still sits at 0.5 on the plateau
        # where every sigmoid net starts; keep the weights of the best validation UAR.
        stop = L.pytorch.callbacks.EarlyStopping(
            "finetune/val_loss", mode="min", patience=settings.patience, check_on_train_epoch_end=True
        )
        stops, min_epochs = [stop], min(settings.min_epochs, settings.max_epochs)
    else:  # every training row for exactly max_epochs
        stops, min_epochs = [], settings.max_epochs
    with quiet_lightning(progress):
        trainer(
            settings.max_epochs,
            logger,
            progress,
            callbacks=[*stops, *(callbacks or [])],
            min_epochs=min_epochs,
            precision=settings.precision.value,
        ).fit(module, one_step_per_epoch())
    if module.average_ is not None:
        net.load_state_dict(module.average_.module.state_dict())
    elif module.best_state_ is not None:
        net.load_state_dict(module.best_state_)
    return net.eval()
