"""How the DBN and the sparse autoencoder are trained: Lightning loops with manual optimisation.
`LayerPretrainer` pretrains one RBM by contrastive divergence (greedy, layer by layer:
`pretrain_stack`); `ValenceClassifier` owns fine-tuning's loss, metrics and early stopping
(`finetune`). The modules they train are plain `torch.nn` ones (`crossemo.models.nets`).
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

from crossemo.models.adaptation import DannSettings, reverse_gradient
from crossemo.models.nets import FeedForward, FinetuneSettings, PretrainSettings, RBMStack
from crossemo.models.rbm import RBM

log = logging.getLogger(__name__)


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
    seed_everything(seed)
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
        if self.settings.mixup_alpha > 0:
            return self._mixup_loss(x, y)
        return F.cross_entropy(self.net(x), y, weight=self.class_weights)

    def _mixup_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # torch's generator, seeded per fit like the noise above, so a fit stays repeatable
        alpha = torch.tensor(self.settings.mixup_alpha)
        share = torch.distributions.Beta(alpha, alpha).sample().item()
        partner = torch.randperm(len(x))
        logits = self.net(share * x + (1 - share) * x[partner])
        own = F.cross_entropy(logits, y, weight=self.class_weights)
        return share * own + (1 - share) * F.cross_entropy(logits, y[partner], weight=self.class_weights)

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
            self.trained_parameters(),
            lr=self.settings.learning_rate,
            weight_decay=self.settings.weight_decay,
            fused=True,
        )

    def trained_parameters(self) -> list[nn.Parameter]:
        return list(self.net.parameters())


@dataclass(frozen=True)
class DomainData:
    """What DANN's domain classifier learns from: the training rows' domains (their corpora), the
    target's unlabeled rows (domain `target_domain`, the last) and the settings."""

    domains: torch.Tensor  # one per training row, 0..target_domain-1
    target_rows: torch.Tensor
    target_domain: int
    settings: DannSettings


class DomainAdversarialClassifier(ValenceClassifier):
    """Fine-tuning with DANN (Ganin et al. 2016): each mini-batch of labelled rows comes with as many
    target rows drawn at random; a domain classifier on the top hidden layer learns every row's
    domain through a gradient-reversal layer, its loss weighted by the schedule at this epoch's
    progress. The valence loss, validation and early stopping are the parent's."""

    def __init__(
        self,
        net: FeedForward,
        settings: FinetuneSettings,
        class_weights: torch.Tensor,
        data: DataLoader,
        validation: tuple[torch.Tensor, torch.Tensor] | None,
        adversary: DomainData,
        seed: int,
    ):
        super().__init__(net, settings, class_weights, data, validation)
        self.adversary = adversary
        width = adversary.settings.hidden
        self.domain_head = nn.Sequential(
            nn.Linear(net.head.in_features, width), nn.ReLU(), nn.Linear(width, adversary.target_domain + 1)
        )
        self.target_draws = torch.Generator().manual_seed(
            seed + 1
        )  # its own stream: the valence batches stay as without DANN

    def training_step(self, batch, epoch_step):
        self.domain_weight = self.adversary.settings.weight_at(self.current_epoch / max(1, self.settings.max_epochs))
        super().training_step(batch, epoch_step)
        self.log("finetune/domain_weight", self.domain_weight)

    def _loss(self, x: torch.Tensor, y: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        target = self.adversary.target_rows
        drawn = target[torch.randint(len(target), (len(x),), generator=self.target_draws)]
        rows = torch.cat([x, drawn])
        domain = torch.cat([domains, torch.full((len(drawn),), self.adversary.target_domain)])
        if self.settings.input_noise > 0:
            rows = rows + self.settings.input_noise * torch.randn_like(rows)
        hidden = self.net.features(rows)
        valence = F.cross_entropy(self.net.head(hidden[: len(x)]), y, weight=self.class_weights)
        guessed = self.domain_head(reverse_gradient(hidden, self.domain_weight))
        return valence + F.cross_entropy(guessed, domain)

    def trained_parameters(self) -> list[nn.Parameter]:
        # one Adam over both: the reversal, not a second optimiser, sets the hidden layers against the domain head
        return [*self.net.parameters(), *self.domain_head.parameters()]


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
    adversary: DomainData | None = None,
) -> FeedForward:
    """Supervised training that stops on the validation loss and returns the net at its best
    validation-UAR epoch; without validation rows, the net after exactly max_epochs; with
    `settings.swa_start`, the mean of its weights over the epochs from then on. With `adversary`,
    domain-adversarial (DANN): the domain head is dropped afterwards, the net is served alone."""
    seed_everything(seed)
    counts = torch.bincount(y, minlength=net.head.out_features).clamp(min=1).float()
    weights = counts.sum() / (len(counts) * counts)
    validation = (x_val, y_val) if len(x_val) else None
    if adversary is None:
        train = batches(x, y, batch_size=settings.batch_size, shuffle=True, seed=seed)
        module = ValenceClassifier(net, settings, weights, train, validation)
    else:
        train = batches(x, y, adversary.domains, batch_size=settings.batch_size, shuffle=True, seed=seed)
        module = DomainAdversarialClassifier(net, settings, weights, train, validation, adversary, seed)
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


class SparseAutoencoderModule(L.LightningModule):
    """Reconstruction error plus a KL penalty pulling each unit's mean activation to `sparsity_target`."""

    def __init__(
        self,
        net: nn.Module,
        learning_rate: float,
        sparsity_target: float,
        sparsity_weight: float,
        weight_decay: float,
        data: DataLoader,
    ):
        super().__init__()
        self.automatic_optimization = False  # a whole epoch per step, as fine-tuning's
        self.net, self.learning_rate, self.weight_decay = net, learning_rate, weight_decay
        self.sparsity_target, self.sparsity_weight, self.data = sparsity_target, sparsity_weight, data

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        reconstruction, code = self.net(x)
        rho, rho_hat = self.sparsity_target, code.mean(0).clamp(1e-6, 1 - 1e-6)
        kl = (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()
        return F.mse_loss(reconstruction, x) + self.sparsity_weight * kl

    def training_step(self, batch, epoch_step):
        """One epoch: an Adam step per mini-batch of `data` (see one_step_per_epoch)."""
        self.log("sae/loss", gradient_epoch(self, self.data, self.loss))

    def configure_optimizers(self):
        return torch.optim.Adam(
            self.net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay, fused=True
        )


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and Python's generators as every fit here does (Lightning's seed_everything)."""
    L.seed_everything(seed, workers=False, verbose=False)
