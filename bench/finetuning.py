"""Fine-tuning step cost: crossemo's Lightning loop against a plain PyTorch loop, and Adam's variants.

    python bench/finetuning.py [--epochs 5]

Measured in one run on random standardised features (1,500 training and 380 validation rows, one
torch thread, as each experiment worker has on 2 cores), for the paper-size net (88-1000-1000-2000,
batches of 32) and the demo-size one (88-128-128-256, batches of 64):
  1. milliseconds per mini-batch step through `crossemo.dbn.finetune` (Lightning, an epoch per step,
     one validation pass an epoch) and through a plain loop doing the same work; their ratio is
     Lightning's overhead;
  2. one Adam step on the paper-size net: PyTorch's default (foreach) against `fused=True`;
  3. the paper-size fit through `finetune` with `precision: bf16-mixed` (Lightning's autocast)
     against 32-true.
Last line: lightning_overhead_paper=<ratio> lightning_overhead_demo=<ratio> fused_adam_speedup=<ratio>
bf16_speedup_paper=<32-true seconds / bf16-mixed seconds>.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

import torch
from torch.nn import functional as F

from crossemo.dbn import FeedForward, FinetuneSettings, finetune

SIZES = {"paper": ((1000, 1000, 2000), 32), "demo": ((128, 128, 256), 64)}


def data(rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(rows, 88, generator=torch.Generator().manual_seed(seed))
    return x, (x[:, 0] > 0).long()


def through_lightning(hidden, batch_size: int, epochs: int, train, val, precision: str = "32-true") -> float:
    settings = FinetuneSettings(
        max_epochs=epochs, min_epochs=epochs, patience=10 * epochs, batch_size=batch_size, precision=precision
    )
    start = time.perf_counter()
    finetune(FeedForward(88, hidden), *train, *val, settings, progress=False)
    return time.perf_counter() - start


def plain_loop(hidden, batch_size: int, epochs: int, train, val) -> float:
    (x, y), (x_val, _) = train, val
    net = FeedForward(88, hidden)
    optimizer = torch.optim.Adam(net.parameters(), 1e-3, fused=True)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), batch_size):
            rows = order[i : i + batch_size]
            loss = F.cross_entropy(net(x[rows]), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            net(x_val)
    return time.perf_counter() - start


def adam_step_seconds(**options) -> float:
    net = FeedForward(88, SIZES["paper"][0])
    x, y = data(32, 0)
    F.cross_entropy(net(x), y).backward()
    optimizer = torch.optim.Adam(net.parameters(), 1e-3, **options)
    for _ in range(3):
        optimizer.step()
    start = time.perf_counter()
    for _ in range(50):
        optimizer.step()
    return (time.perf_counter() - start) / 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    train, val = data(1500, 1), data(380, 2)
    overhead = {}
    for name, (hidden, batch_size) in SIZES.items():
        steps = args.epochs * -(-len(train[0]) // batch_size)
        ours = through_lightning(hidden, batch_size, args.epochs, train, val)
        plain = plain_loop(hidden, batch_size, args.epochs, train, val)
        overhead[name] = ours / plain
        print(f"{name:5}: lightning {ours / steps * 1e3:6.2f} ms/step, plain {plain / steps * 1e3:6.2f} ms/step")
    foreach, fused = adam_step_seconds(), adam_step_seconds(fused=True)
    print(f"Adam step, paper size: foreach {foreach * 1e3:.2f} ms, fused {fused * 1e3:.2f} ms")
    hidden, batch_size = SIZES["paper"]
    full = through_lightning(hidden, batch_size, args.epochs, train, val)
    bf16 = through_lightning(hidden, batch_size, args.epochs, train, val, precision="bf16-mixed")
    print(f"paper fit, {args.epochs} epochs: 32-true {full:.2f} s, bf16-mixed {bf16:.2f} s")
    print(
        f"lightning_overhead_paper={overhead['paper']:.2f} lightning_overhead_demo={overhead['demo']:.2f} "
        f"fused_adam_speedup={foreach / fused:.2f} bf16_speedup_paper={full / bf16:.2f}"
    )


if __name__ == "__main__":
    main()
