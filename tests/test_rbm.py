"""The RBM's maths checked exactly, by enumerating every state of a 4-visible, 3-hidden machine."""

from __future__ import annotations

import torch

from crossemo.models.rbm import RBM

from .conftest import D, states


def bernoulli_rbm(seed: int = 0, scale: float = 1.5) -> RBM:
    torch.manual_seed(seed)
    rbm = RBM(4, 3, "bernoulli").double()
    with torch.no_grad():
        rbm.weight.copy_(torch.randn(4, 3) * scale)
        rbm.visible_bias.copy_(torch.randn(4) * 0.5)
        rbm.hidden_bias.copy_(torch.randn(3) * 0.5)
    return rbm


def gaussian_rbm(seed: int) -> RBM:
    torch.manual_seed(seed)
    rbm = RBM(4, 3, "gaussian").double()
    with torch.no_grad():
        rbm.weight.normal_(0, 0.7)
        rbm.visible_bias.normal_()
        rbm.hidden_bias.normal_()
    return rbm


def energy(rbm: RBM, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """E(v, h) for every pair: rows v, columns h."""
    pair = v @ rbm.weight @ h.t()
    hidden = (h @ rbm.hidden_bias)[None, :]
    if rbm.visible.value == "gaussian":
        return 0.5 * ((v - rbm.visible_bias) ** 2).sum(1, keepdim=True) - hidden - pair
    return -(v @ rbm.visible_bias)[:, None] - hidden - pair


DATA = torch.tensor(
    [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [1, 1, 1, 0], [0, 0, 1, 1], [0, 1, 1, 1]], dtype=torch.float64
)


def exact_gradient(rbm: RBM, data: torch.Tensor) -> torch.Tensor:
    """d/dW of the mean log-likelihood: E_data[v p(h|v)] - E_model[v h], by enumeration."""
    v, h = states(4), states(3)
    with torch.no_grad():
        joint = torch.softmax(-energy(rbm, v, h).flatten(), 0).reshape(16, 8)
        model = torch.einsum("vh,vi,hj->ij", joint, v, h)
        return data.t() @ rbm.hidden_probs(data) / len(data) - model


def exact_cd_expectation(rbm: RBM, data: torch.Tensor, k: int) -> torch.Tensor:
    """The expectation of the CD-k weight statistic, through the Gibbs chain's transition matrix."""
    v, h = states(4), states(3)
    with torch.no_grad():
        ph = rbm.hidden_probs(v)  # p(h_j = 1 | v), 16 x 3
        p_h_given_v = torch.prod(torch.where(h[None] == 1, ph[:, None], 1 - ph[:, None]), dim=2)  # 16 x 8
        pv = torch.sigmoid(rbm.visible_bias + h @ rbm.weight.t())
        p_v_given_h = torch.prod(torch.where(v[None] == 1, pv[:, None], 1 - pv[:, None]), dim=2)  # 8 x 16
        step = p_h_given_v @ p_v_given_h
        index = [int("".join(str(int(x)) for x in row), 2) for row in data]
        after_k = torch.linalg.matrix_power(step, k)[index]  # distribution of v_k per data row
        negative = torch.einsum("nv,vi,vj->ij", after_k, v, ph) / len(data)
        return data.t() @ rbm.hidden_probs(data) / len(data) - negative


def test_free_energy_matches_the_enumerated_marginal():
    rbm, v, h = bernoulli_rbm(), states(4), states(3)
    with torch.no_grad():
        enumerated = -torch.logsumexp(-energy(rbm, v, h), dim=1)
        torch.testing.assert_close(rbm.free_energy(v), enumerated, atol=1e-10, rtol=0)


def test_gaussian_free_energy_matches_the_enumeration_over_hidden_states():
    rbm = gaussian_rbm(seed=1)
    with torch.no_grad():
        v = torch.randn(10, 4, dtype=D)
        enumerated = -torch.logsumexp(-energy(rbm, v, states(3)), dim=1)
        torch.testing.assert_close(rbm.free_energy(v), enumerated, atol=1e-10, rtol=0)


def test_gaussian_bernoulli_conditionals_have_their_closed_form():
    rbm = gaussian_rbm(seed=2)
    with torch.no_grad():
        v = torch.randn(5, 4, dtype=D)
        # p(h_j = 1 | v) from the energy: the ratio of exp(-E) with h_j on and off.
        h_all = states(3)
        joint = torch.softmax(-energy(rbm, v, h_all), dim=1)
        torch.testing.assert_close(rbm.hidden_probs(v), joint @ h_all, atol=1e-10, rtol=0)
        # p(v | h) = N(b + W h, I): mean and unit variance of many samples.
        h = torch.tensor([[1.0, 0.0, 1.0]], dtype=D).repeat(200_000, 1)
        samples = rbm.sample_visible(h, torch.Generator().manual_seed(0))
        torch.testing.assert_close(samples.mean(0), rbm.visible_bias + rbm.weight @ h[0], atol=0.01, rtol=0)
        torch.testing.assert_close(samples.var(0), torch.ones(4, dtype=D), atol=0.02, rtol=0)


def cd_estimate(rbm: RBM, k: int, copies: int = 6000, seed: int = 0) -> torch.Tensor:
    v0 = DATA.repeat(copies, 1)
    return rbm.contrastive_divergence(v0, k=k, generator=torch.Generator().manual_seed(seed)).weight


def test_cd_statistics_estimate_the_exact_cd_expectation():
    """The sampler is right: Monte Carlo CD-k equals the transition-matrix expectation (36,000 chains)."""
    rbm = bernoulli_rbm()
    for k in (1, 3):
        torch.testing.assert_close(cd_estimate(rbm, k), exact_cd_expectation(rbm, DATA, k), atol=0.015, rtol=0)


def test_bfloat16_products_estimate_the_same_exact_cd_expectation():
    """bf16-mixed pretraining runs the chain and its products in bfloat16: the statistics still
    estimate the exact expectation, and come back in the parameters' dtype."""
    rbm = bernoulli_rbm()
    for k in (1, 3):
        low = rbm.contrastive_divergence(
            DATA.repeat(6000, 1), k=k, generator=torch.Generator().manual_seed(0), dtype=torch.bfloat16
        )
        assert low.weight.dtype == low.hidden_bias.dtype == low.visible_bias.dtype == D
        assert not torch.equal(low.weight, cd_estimate(rbm, k))  # the products did run in bfloat16
        torch.testing.assert_close(low.weight, exact_cd_expectation(rbm, DATA, k), atol=0.02, rtol=0)


def test_cd_k_approaches_the_exact_gradient_as_k_grows():
    rbm = bernoulli_rbm()
    exact = exact_gradient(rbm, DATA)
    bias = [float((exact_cd_expectation(rbm, DATA, k) - exact).abs().max()) for k in (1, 2, 5, 20, 100)]
    assert bias[0] > 0.02  # CD-1 is visibly biased on this machine
    assert all(later <= earlier + 1e-12 for earlier, later in zip(bias, bias[1:]))
    assert bias[-1] < 1e-6
    # And the implementation's own estimate at k = 100 is within Monte Carlo error of the exact gradient.
    torch.testing.assert_close(cd_estimate(rbm, 100, copies=3000), exact, atol=0.02, rtol=0)


def test_persistent_chain_statistics_use_the_chain_for_the_negative_phase():
    rbm = bernoulli_rbm()
    chain = torch.zeros(6, 4, dtype=D)
    stats = rbm.contrastive_divergence(DATA, k=1, chain=chain, generator=torch.Generator().manual_seed(0))
    assert stats.reconstruction is None and stats.chain_end.shape == chain.shape
    positive = DATA.t() @ rbm.hidden_probs(DATA) / 6
    negative = stats.chain_end.t() @ rbm.hidden_probs(stats.chain_end) / 6
    torch.testing.assert_close(stats.weight, positive - negative)
