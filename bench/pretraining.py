"""Pretraining benchmark: the DBN's CD-1 loop against the machine's matmul rate and a naive reference.

    python bench/pretraining.py [--epochs 5] [--full] [--batch-size 256]

Measured in one run, so the noisy shared machine slows every figure alike:
  1. the single-precision matmul rate (a 2048 x 2048 product, best of several);
  2. CD-1 throughput of the paper's 88-1000-1000-2000 stack through crossemo's Lightning loop,
     in samples/s and in achieved flop/s, counting 10 v h flops per sample per CD-1 step of a
     v x h layer (four chain products and two statistics products of 2 v h each; samplings,
     sigmoids and the parameter update are not counted);
  3. the same with `precision: bf16-mixed` (the chain's products in bfloat16), as a ratio to 2;
  4. the same through scikit-learn's BernoulliRBM at the same sizes and batch size;
  5. with --full, one whole paper-size pretraining (500 epochs per layer) on the real corpora.
Input: eGeMAPS features of the four real corpora in ../shared/corpora (about 2,000 utterances),
or random standardised features of that size when the corpora are absent.
The line before the last: bf16_speedup=<bf16-mixed samples/s / 32-true samples/s>.
Last line: matmul_fraction=<achieved/matmul rate> speedup_vs_reference=<ratio> (both float32).
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.neural_network import BernoulliRBM

from crossemo.models.nets import PretrainSettings
from crossemo.models.training import pretrain_stack

SIZES = (1000, 1000, 2000)
CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"


def matmul_rate(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def features() -> np.ndarray:
    if not (CORPORA / "emodb").is_dir():
        print(f"(no corpora at {CORPORA}: random features of the same size)")
        return np.random.default_rng(0).standard_normal((2003, 88)).astype(np.float32)
    from crossemo.data.corpora import load_corpus
    from crossemo.data.features import FeatureSettings, extract

    paths = []
    for name in ("emodb", "savee", "emovo", "urdu"):
        paths += [CORPORA / name / p for p in load_corpus(name, CORPORA / name)["path"]]
    values, bad = extract(paths, FeatureSettings(), progress="(cached)")
    x = values[[i for i in range(len(paths)) if i not in bad]]
    return ((x - x.mean(0)) / (x.std(0) + 1e-6)).astype(np.float32)


def flops_per_epoch(n: int, sizes=(88, *SIZES)) -> list[float]:
    return [10.0 * v * h * n for v, h in zip(sizes, sizes[1:])]


def crossemo_throughput(x: np.ndarray, epochs: int, batch_size: int, precision: str = "32-true") -> tuple[float, float]:
    """(samples/s over the whole stack, flop/s), timing each layer's fit with its trainer."""
    settings = PretrainSettings(epochs=epochs, batch_size=batch_size, learning_rate=1e-3, precision=precision)
    start = time.perf_counter()
    pretrain_stack(torch.from_numpy(x), SIZES, settings, progress=False)
    seconds = time.perf_counter() - start
    return len(x) * epochs * len(SIZES) / seconds, sum(flops_per_epoch(len(x))) * epochs / seconds


def reference_throughput(x: np.ndarray, epochs: int, batch_size: int) -> tuple[float, float]:
    """scikit-learn's BernoulliRBM, layer by layer at the same sizes (inputs squashed to [0, 1])."""
    data = 1 / (1 + np.exp(-x))
    seconds = 0.0
    for h in SIZES:
        rbm = BernoulliRBM(n_components=h, learning_rate=1e-3, batch_size=batch_size, n_iter=epochs, random_state=0)
        seconds += _timed(lambda rbm=rbm, data=data: rbm.fit(data))  # bound now, not at call time
        data = rbm.transform(data).astype(np.float32)
    return len(x) * epochs * len(SIZES) / seconds, sum(flops_per_epoch(len(x))) * epochs / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5, help="epochs per layer for the throughput runs")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--full", action="store_true", help="also time a whole 500-epoch paper pretraining")
    args = parser.parse_args()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    x = features()
    print(f"{len(x)} utterances x {x.shape[1]} features; torch threads: {torch.get_num_threads()}")
    rate = matmul_rate()
    print(f"matmul (2048^2, fp32):        {rate / 1e9:8.1f} GFLOP/s")
    ours_sps, ours_flops = crossemo_throughput(x, args.epochs, args.batch_size)
    print(f"crossemo CD-1 (batch {args.batch_size}):    {ours_flops / 1e9:8.1f} GFLOP/s  {ours_sps:10.0f} samples/s")
    bf16_sps, bf16_flops = crossemo_throughput(x, args.epochs, args.batch_size, precision="bf16-mixed")
    print(f"crossemo CD-1, bf16-mixed:    {bf16_flops / 1e9:8.1f} GFLOP/s  {bf16_sps:10.0f} samples/s")
    ref_sps, ref_flops = reference_throughput(x, max(1, args.epochs // 2), args.batch_size)
    print(f"sklearn BernoulliRBM:         {ref_flops / 1e9:8.1f} GFLOP/s  {ref_sps:10.0f} samples/s")
    if args.full:
        start = time.perf_counter()
        pretrain_stack(
            torch.from_numpy(x), SIZES, PretrainSettings(epochs=500, batch_size=args.batch_size), progress=True
        )
        print(f"full paper pretraining (500 epochs x 3 layers): {(time.perf_counter() - start) / 60:.1f} min")
    print(f"bf16_speedup={bf16_sps / ours_sps:.2f}")
    print(f"matmul_fraction={ours_flops / rate:.2f} speedup_vs_reference={ours_sps / ref_sps:.2f}")


if __name__ == "__main__":
    main()
