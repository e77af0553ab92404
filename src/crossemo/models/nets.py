"""Deep Belief Network, the modules and their settings: an RBM stack, the feed-forward net it
initialises, and what pretraining and fine-tuning take. How they are trained (the Lightning loops:
greedy layer-wise CD pretraining, supervised fine-tuning) is `crossemo.models.training`, which only the
processes that fit import: building a model to check its settings needs no Lightning.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import nn

from crossemo.errors import ConfigError, choice
from crossemo.models.rbm import RBM, VisibleUnits

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

    learning_rate: float = 1e-3  # CD's step size
    epochs: int | tuple[int, ...] = 500  # one number for every layer, or one per layer
    cd_steps: int = 1  # Gibbs steps per CD update (CD-k)
    persistent: bool = False  # persistent CD: the negative chain carries over between batches
    momentum: float = 0.9  # 0.5 for the first `momentum_warmup` epochs, then this (guide, sec. 9)
    momentum_warmup: int = 5  # epochs at momentum 0.5 before `momentum`
    weight_decay: float = 2e-4  # L2 on the weights only (guide, sec. 10)
    sparsity_target: float | None = None  # desired mean hidden activation (guide, sec. 11)
    sparsity_cost: float = 0.0  # weight of the sparsity penalty
    batch_size: int = 256  # rows per CD update
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

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The top hidden layer's activations (what the head decides on; DANN's domain classifier reads them)."""
        for linear in self.hidden:
            x = self.dropout(torch.sigmoid(linear(x)))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass(frozen=True)
class FinetuneSettings:
    learning_rate: float = 1e-3  # Adam's step size
    max_epochs: int = 200  # the most epochs of fine-tuning
    patience: int = 20  # epochs without a lower validation loss before stopping
    min_epochs: int = 10  # small corpora give few steps per epoch: never stop before this
    batch_size: int = 64  # rows per step
    weight_decay: float = 0.0  # Adam's L2 penalty
    dropout: float = 0.0  # dropout on each hidden layer
    input_noise: float = 0.0  # std of Gaussian noise added to the (standardised) inputs of each training batch
    # > 0: mixup (Zhang et al. 2018): each batch trains on convex mixtures of its rows and their labels,
    # the mixing weight drawn from Beta(mixup_alpha, mixup_alpha) once per batch
    mixup_alpha: float = 0.0
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
        if self.mixup_alpha < 0:
            raise ConfigError(
                f"finetune.mixup_alpha is {self.mixup_alpha}; use 0 (no mixup) or a Beta parameter above 0"
            )
        if not 0 <= self.validation_fraction < 1:
            raise ConfigError(
                f"finetune.validation_fraction is {self.validation_fraction}; use a fraction of the training"
                " speakers below 1, or 0 for no early stopping (max_epochs on every training row)"
            )

    @property
    def early_stopping(self) -> bool:
        return self.validation_fraction > 0
