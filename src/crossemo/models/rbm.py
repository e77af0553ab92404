"""Restricted Boltzmann machines as plain `nn.Module`s: conditionals, sampling, free energy, CD statistics.

Energy, with unit-variance Gaussian visible units on standardised inputs (Hinton 2010, sec. 13.2):
    Bernoulli visible:  E(v, h) = -b.v - c.h - v.W.h
    Gaussian visible:   E(v, h) = ||v - b||^2 / 2 - c.h - v.W.h
Training (contrastive divergence) lives in `crossemo.models.training`; this module only computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import nn
from torch.nn import functional as F


class VisibleUnits(StrEnum):
    BERNOULLI = "bernoulli"
    GAUSSIAN = "gaussian"


@dataclass
class CDStatistics:
    """Positive minus negative phase, averaged over the batch: the ascent direction of the log-likelihood."""

    weight: torch.Tensor
    visible_bias: torch.Tensor
    hidden_bias: torch.Tensor
    hidden_probs: torch.Tensor  # p(h | data), for the sparsity target
    reconstruction: torch.Tensor | None  # E[v | h0]: None for persistent CD, whose chain is not the data
    chain_end: torch.Tensor  # the visible state after k steps (the persistent chain's next start)


class RBM(nn.Module):
    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        visible: VisibleUnits | str = VisibleUnits.BERNOULLI,
        init_std: float = 0.01,
    ):
        super().__init__()
        self.visible = VisibleUnits(visible)
        # Small random weights, zero biases: Hinton's practical guide, section 8.
        self.weight = nn.Parameter(torch.randn(n_visible, n_hidden) * init_std)
        self.visible_bias = nn.Parameter(torch.zeros(n_visible))
        self.hidden_bias = nn.Parameter(torch.zeros(n_hidden))

    @property
    def n_visible(self) -> int:
        return self.weight.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.weight.shape[1]

    def hidden_probs(self, v: torch.Tensor) -> torch.Tensor:
        """p(h_j = 1 | v) = sigmoid(c_j + v.W_j), for both kinds of visible unit."""
        return torch.addmm(self.hidden_bias, v, self.weight).sigmoid_()

    def visible_mean(self, h: torch.Tensor) -> torch.Tensor:
        """E[v | h]: sigmoid(b + W h) for Bernoulli units, b + W h for Gaussian ones."""
        activation = torch.addmm(self.visible_bias, h, self.weight.t())
        return activation if self.visible is VisibleUnits.GAUSSIAN else activation.sigmoid_()

    def sample_hidden(self, v: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return _bernoulli(self.hidden_probs(v), generator)

    def sample_visible(self, h: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self._sample_visible_from_mean(self.visible_mean(h), generator)

    def _sample_visible_from_mean(
        self, mean: torch.Tensor, generator: torch.Generator | None, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.visible is VisibleUnits.GAUSSIAN:
            noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, out=out)
            return noise.add_(mean)
        return _bernoulli(mean, generator, out)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = -log sum_h exp(-E(v, h)), one value per row."""
        hidden_term = F.softplus(torch.addmm(self.hidden_bias, v, self.weight)).sum(dim=1)
        if self.visible is VisibleUnits.GAUSSIAN:
            return 0.5 * ((v - self.visible_bias) ** 2).sum(dim=1) - hidden_term
        return -(v @ self.visible_bias) - hidden_term

    def reconstruction_error(self, v: torch.Tensor) -> torch.Tensor:
        """Mean squared error of E[v | h ~ p(h | v)]: a rough progress signal, not the objective."""
        return ((v - self.visible_mean(self.hidden_probs(v))) ** 2).mean()

    @torch.no_grad()
    def contrastive_divergence(
        self,
        v0: torch.Tensor,
        k: int = 1,
        chain: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ) -> CDStatistics:
        """CD-k statistics, or persistent CD when `chain` holds the fantasy particles.

        The last hidden state enters as probabilities, not samples, which lowers the variance
        (practical guide, sec. 3). Costs 10 v h flops per sample for k = 1: four matrix
        products of the chain and two outer products of the statistics.

        `dtype` is that of the chain and its products (default: the parameters'): bfloat16 runs them at
        about twice the float32 rate where the CPU has bfloat16 instructions. The statistics come back
        in the parameters' dtype; the positive-minus-negative difference is formed inside one product's
        float32 accumulator (see below), so only the final difference is rounded, never the two large
        phases before it.
        """
        # Both phases live in one buffer each, stacked: [data; chain end] visible states and [h0; hk]
        # hidden probabilities. Their outer products are then one matrix product with twice the inner
        # dimension, which runs near the machine's matmul rate where two half-size ones do not, and
        # the conditionals are written straight into place instead of being concatenated afterwards.
        exact = self.weight.dtype
        dtype = dtype or exact
        weight, visible_bias, hidden_bias = (p.to(dtype) for p in (self.weight, self.visible_bias, self.hidden_bias))
        n = v0.shape[0]
        visible = torch.empty((2 * n, self.n_visible), dtype=dtype)
        phases = torch.empty((2 * n, self.n_hidden), dtype=dtype)
        visible[:n] = v0

        def hidden_probs(v, out=None):
            return torch.addmm(hidden_bias, v, weight, out=out).sigmoid_()

        def visible_mean(h):
            activation = torch.addmm(visible_bias, h, weight.t())
            return activation if self.visible is VisibleUnits.GAUSSIAN else activation.sigmoid_()

        h0 = hidden_probs(visible[:n], out=phases[:n])
        h = _bernoulli(h0 if chain is None else hidden_probs(chain.to(dtype)), generator)
        reconstruction, v, hk = None, visible[n:], phases[n:]
        for step in range(k):
            mean = visible_mean(h)
            if step == 0 and chain is None:
                reconstruction = mean
            self._sample_visible_from_mean(mean, generator, out=v)
            hidden_probs(v, out=hk)
            if step < k - 1:
                h = _bernoulli(hk, generator)
        visible_bias_step = (visible[:n] - v).to(exact).mean(0)
        hk.neg_()  # the negative phase enters the product with its sign
        weight_step = visible.t().mm(phases).to(exact).div_(n)
        hidden_bias_step = phases.sum(0, dtype=exact).div_(n)
        return CDStatistics(weight_step, visible_bias_step, hidden_bias_step, h0.to(exact), reconstruction, v)


def _bernoulli(p: torch.Tensor, generator: torch.Generator | None, out: torch.Tensor | None = None) -> torch.Tensor:
    # in place: the uniform draws become the 0/1 sample, with no boolean tensor and no copy
    return torch.rand(p.shape, generator=generator, dtype=p.dtype, out=out).lt_(p)
