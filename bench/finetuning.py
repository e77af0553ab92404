"""Fine-tuning step cost: crossemo's Lightning loop against a plain PyTorch loop, and Adam's variants.

    python bench/finetuning.py [--epochs 5]

Measured in one run on random standardised features (1,500 training and 380 validation rows, one
torch thread, as each experiment worker has on 2 cores), for the paper-size net (88-1000-1000-2000,
batches of 32) and the demo-size one (88-128-128-256, batches of 64):
  1. milliseconds per mini-batch step through `crossemo.models.training.finetune` (Lightning, an epoch per step,
     one validation pass an epoch) and through a plain loop doing the same work; their ratio is
     Lightning's overhead;
  2. one Adam step on the paper-size net: PyTorch's default (foreach) against `fused=True`;
  3. the paper-size fit through `finetune` with `precision: bf16-mixed` (Lightning's autocast)
     against 32-true;
  4. dbn_best's ensemble (five 88-512-512 members, dropout 0.5, batches of 32): a training step of
     each member apart against one step of all five as one batched network (stacked weights,
     `torch.baddbmm`), plain PyTorch both, float32 and bfloat16;
  5. one such member's training step with torch's dropout against `UniformDropout` (its mask from
     uniform float32 draws);
  6. where a paper-size bf16-mixed step's time goes (torch's profiler): the matrix products, the
     fused Adam update, autocast's casts and the rest; the products' rate against the rate of one
     large bfloat16 product (2048 x 2048 x 2048) on the same core.
Last line: lightning_overhead_paper=<ratio> lightning_overhead_demo=<ratio> fused_adam_speedup=<ratio>
bf16_speedup_paper=<32-true seconds / bf16-mixed seconds> batched_ensemble_speedup=<apart / batched>
uniform_dropout_speedup=<torch's / uniform> matmul_share_paper=<fraction of the step>
matmul_rate_fraction_paper=<the step's products' rate / the large product's>.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

import torch
from torch.nn import functional as F

from crossemo.models.nets import FeedForward, FinetuneSettings, UniformDropout
from crossemo.models.training import finetune

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


def members_apart_seconds(members: int, hidden: int, steps: int, dtype: torch.dtype) -> float:
    """Seconds per training step of `members` separate nets (each its own batch of 32)."""
    nets = [FeedForward(88, (hidden, hidden), dropout=0.5) for _ in range(members)]
    optimizers = [torch.optim.Adam(net.parameters(), 1e-3, fused=True) for net in nets]
    x, y = data(32 * members, 3)

    def step():
        for i, (net, optimizer) in enumerate(zip(nets, optimizers)):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                loss = F.cross_entropy(net(x[32 * i : 32 * (i + 1)]), y[32 * i : 32 * (i + 1)])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    return _per_step(step, steps)


def members_batched_seconds(members: int, hidden: int, steps: int, dtype: torch.dtype) -> float:
    """Seconds per training step of the same members as one network: weights stacked along a member
    dimension, each layer one batched product over the members' own batches."""
    sizes = (88, hidden, hidden, 2)
    weights = [(torch.randn(members, a, b) * 0.01).requires_grad_() for a, b in zip(sizes, sizes[1:])]
    biases = [torch.zeros(members, 1, b, requires_grad=True) for b in sizes[1:]]
    optimizer = torch.optim.Adam(weights + biases, 1e-3, fused=True)
    x, y = data(32 * members, 3)
    x, y = x.view(members, 32, 88), y.view(members * 32)
    dropout = UniformDropout(0.5)  # as the members'

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            h = x
            for w, b in zip(weights[:-1], biases[:-1]):
                h = dropout(torch.sigmoid(torch.baddbmm(b, h, w)))
            logits = torch.baddbmm(biases[-1], h, weights[-1])
            # summed over members: each member's slice gets its own mean loss's gradient, as apart
            loss = F.cross_entropy(logits.reshape(-1, 2), y, reduction="sum") / 32
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return _per_step(step, steps)


def member_step_seconds(dropout: torch.nn.Module, steps: int) -> float:
    """Seconds per training step of one dbn_best member (88-512-512, batches of 32) with this dropout."""
    net = FeedForward(88, (512, 512))
    net.dropout = dropout
    optimizer = torch.optim.Adam(net.parameters(), 1e-3, fused=True)
    x, y = data(32, 4)

    def step():
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return _per_step(step, steps)


def _per_step(step, steps: int) -> float:
    for _ in range(5):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


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


def paper_step_anatomy(steps: int = 30) -> tuple[dict[str, float], float, float]:
    """Milliseconds per paper-size bf16-mixed training step (batches of 32) spent in matrix products,
    Adam, casts and the rest; the products' GFLOP/s; and one large bfloat16 product's GFLOP/s."""
    from torch.profiler import ProfilerActivity, profile

    hidden, batch_size = SIZES["paper"]
    net = FeedForward(88, hidden)
    optimizer = torch.optim.Adam(net.parameters(), 1e-3, fused=True)
    x, y = data(batch_size, 5)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    _per_step(step, 5)
    with profile(activities=[ProfilerActivity.CPU]) as profiled:
        for _ in range(steps):
            step()
    kinds = {"matmul": ("aten::mm", "aten::addmm"), "adam": ("aten::_fused_adam_",), "casts": ("aten::copy_",)}
    self_ms = {e.key: e.self_cpu_time_total / 1e3 / steps for e in profiled.key_averages()}
    total = sum(self_ms.values())
    anatomy = {kind: sum(self_ms.get(op, 0.0) for op in ops) for kind, ops in kinds.items()}
    anatomy["rest"] = total - sum(anatomy.values())
    sizes = (88, *hidden, 2)
    products = sum(a * b for a, b in zip(sizes, sizes[1:]))
    # forward, the weights' gradients, and the inputs' gradients of every layer but the first
    flops = 2 * batch_size * (2 * products + products - sizes[0] * sizes[1])
    a = torch.randn(2048, 2048, dtype=torch.bfloat16)
    large = _per_step(lambda: a @ a, 10)
    return anatomy, flops / (anatomy["matmul"] / 1e3) / 1e9, 2 * 2048**3 / large / 1e9


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
    batched_speedup = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        apart, batched = members_apart_seconds(5, 512, 200, dtype), members_batched_seconds(5, 512, 200, dtype)
        batched_speedup[name] = apart / batched
        print(f"5 members, 512-512, {name}: apart {apart * 1e3:.2f} ms/step, batched {batched * 1e3:.2f} ms/step")
    bernoulli, uniform = member_step_seconds(torch.nn.Dropout(0.5), 400), member_step_seconds(UniformDropout(0.5), 400)
    print(f"dbn_best member step, dropout 0.5: torch's {bernoulli * 1e3:.2f} ms, uniform draws {uniform * 1e3:.2f} ms")
    anatomy, step_rate, large_rate = paper_step_anatomy()
    step_ms = sum(anatomy.values())
    print(
        f"paper bf16-mixed step {step_ms:.2f} ms: "
        + ", ".join(f"{kind} {ms:.2f} ms ({ms / step_ms:.0%})" for kind, ms in anatomy.items())
        + f"; its products {step_rate:.0f} GFLOP/s, one 2048^3 bfloat16 product {large_rate:.0f} GFLOP/s"
    )
    print(
        f"lightning_overhead_paper={overhead['paper']:.2f} lightning_overhead_demo={overhead['demo']:.2f} "
        f"fused_adam_speedup={foreach / fused:.2f} bf16_speedup_paper={full / bf16:.2f} "
        f"batched_ensemble_speedup={batched_speedup['float32']:.2f} uniform_dropout_speedup={bernoulli / uniform:.2f} "
        f"matmul_share_paper={anatomy['matmul'] / step_ms:.2f} matmul_rate_fraction_paper={step_rate / large_rate:.2f}"
    )


if __name__ == "__main__":
    main()
