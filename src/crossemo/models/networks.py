"""The neural valence models: a DBN (an RBM stack pretrained, then fine-tuned), the same net
without pretraining (an MLP), and a DBN's stack as an SVM's features.

Estimators in scikit-learn's manner: `__init__` only stores hyperparameters, `fit` learns, and
learned state ends in `_`."""

from __future__ import annotations

import logging
from enum import StrEnum

import numpy as np
import torch

from crossemo.errors import ConfigError, choice, settings_from
from crossemo.models.adaptation import Adaptation, DannSettings, domain_labels, require_target_rows
from crossemo.models.baselines import (
    balanced_decisions,
    calibrated_svm,
)
from crossemo.models.estimator import ValenceModel
from crossemo.models.nets import FeedForward, FinetuneSettings, PretrainSettings, RBMStack
from crossemo.models.stacks import StackCache, stack_key
from crossemo.models.validation import corpus_validation_split, validation_split

log = logging.getLogger(__name__)


class PretrainData(StrEnum):
    """What the RBM stack is pretrained on."""

    TRAIN = "train"  # the labelled training rows only
    TRAIN_AND_UNLABELED = "train+unlabeled"  # plus the unlabeled rows given to fit (e.g. the target's audio)
    UNLABELED = "unlabeled"  # the unlabeled rows alone: pass one shared pool and every run reuses one stack


class MemberStacks(StrEnum):
    """Where an ensemble's members start."""

    SHARED = "shared"  # every member from the one stack of the model's seed
    OWN = "own"  # each member from a stack pretrained with its own seed (seed + 1000 * member)


class ValidateOn(StrEnum):
    """Which training rows a member holds out to stop its fine-tuning on."""

    SPEAKERS = "speakers"  # validation_fraction of the training speakers, every corpus mixed
    CORPUS = "corpus"  # one whole training corpus, member by member in turn: stop where the net does


class FineTunedNet(ValenceModel):
    """A sigmoid feed-forward net fine-tuned with labels on a speaker-disjoint validation split.
    Subclasses say how the net starts (`_initial_net`): from a pretrained RBM stack, or at random."""

    RUNTIME = frozenset({"logger", "progress", "callbacks"})
    dann: DannSettings | None = None  # what models saved before DANN existed load with

    def __init__(
        self,
        hidden=(1000, 1000, 2000),
        finetune: FinetuneSettings | dict | None = None,
        ensemble: int = 1,
        seed: int = 0,
        progress: bool = False,
        logger=None,
        callbacks: list | None = None,
        validate_on: str = "speakers",
        dann: DannSettings | dict | None = None,
    ):
        self.hidden, self.finetune, self.ensemble = tuple(hidden), finetune, ensemble
        self.seed, self.progress, self.logger = seed, progress, logger
        self.callbacks = callbacks  # extra Lightning callbacks for fine-tuning (e.g. Optuna pruning)
        self.validate_on = choice(ValidateOn, validate_on, "validate_on")
        # adaptation: dann (None: none); models.<name>.dann's settings, refused here if bad
        self.dann = settings_from(DannSettings, "dann", dann) if isinstance(dann, dict) else dann
        if ensemble < 1:
            raise ConfigError(f"ensemble must be at least 1 member, not {ensemble}")
        fine = self._finetune_settings()  # a bad key or value is refused here, not after an hour of pretraining
        if self.dann is not None and fine.mixup_alpha > 0:  # DANN's loss has no mixed rows' domains
            raise ConfigError(
                "adaptation: dann does not combine with finetune.mixup_alpha: set one of them to none / 0"
            )

    def _finetune_settings(self) -> FinetuneSettings:
        if isinstance(self.finetune, FinetuneSettings):
            return self.finetune
        return settings_from(FinetuneSettings, "finetune", self.finetune or {})

    def _initial_net(
        self, x_train: np.ndarray, x_val: np.ndarray, unlabeled: np.ndarray | None, seed: int
    ) -> FeedForward:
        raise NotImplementedError

    @property
    def learns_from_unlabeled(self) -> bool:
        return self.dann is not None

    def _fit(self, x, y, groups, unlabeled):
        """Each member: its own speaker-disjoint validation split, head and batch order (seeds seed,
        seed + 1000, ...; one member is the single net of `seed`), from the same start (for a DBN,
        one pretrained stack). Averaging members that stopped on different held-out speakers steadies
        what one net's early stopping on a few speakers leaves to chance. Without early stopping
        (validation_fraction 0) every member fits every row; they differ by head, dropout and order."""
        from crossemo.models import training

        fine = self._finetune_settings()
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
        domains = self._domains(groups, len(y), unlabeled)
        self.nets_ = []
        for member in range(self.ensemble):
            seed = self.seed + 1000 * member
            train, val = self._member_split(y, groups, fine, member, seed)
            net = self._initial_net(x[train], x[val], unlabeled, seed)
            curves = self.logger if member == 0 else None  # one member's curves: the others' look alike
            adversary = (
                None
                if domains is None
                else training.DomainData(t(domains[0][train]), t(unlabeled), domains[1], self.dann)
            )
            self.nets_.append(
                training.finetune(
                    net,
                    t(x[train]),
                    t(y[train]),
                    t(x[val]),
                    t(y[val]),
                    fine,
                    curves,
                    self.progress,
                    seed,
                    self.callbacks,
                    adversary,
                )
            )

    def _domains(self, groups, n_rows: int, unlabeled) -> tuple[np.ndarray, int] | None:
        """With DANN: each training row's domain (its corpus) and the target's domain number."""
        if self.dann is None:
            return None
        require_target_rows(unlabeled, Adaptation.DANN)
        return domain_labels(groups, n_rows)

    def _member_split(self, y, groups, fine: FinetuneSettings, member: int, seed: int):
        """The member's (training, validation) rows."""
        if not fine.early_stopping:
            return np.arange(len(y)), np.arange(0)  # members differ by their seed alone
        if self.validate_on is ValidateOn.CORPUS and groups is not None:
            split = corpus_validation_split(groups, member)
            if split is not None:
                return split
        return validation_split(y, groups, fine.validation_fraction, seed)

    @torch.no_grad()
    def _proba(self, x):
        inputs = torch.from_numpy(x)
        return torch.stack([torch.softmax(net(inputs), dim=1) for net in self.nets_]).mean(0).numpy()


class DBNValence(FineTunedNet):
    """RBM stack pretrained greedily with contrastive divergence, then fine-tuned with labels."""

    RUNTIME = frozenset({"logger", "stack_store", "progress", "callbacks"})

    def __init__(
        self,
        hidden=(1000, 1000, 2000),
        pretrain: PretrainSettings | dict | None = None,
        finetune: FinetuneSettings | dict | None = None,
        pretrain_data: str = "train+unlabeled",
        ensemble: int = 1,
        seed: int = 0,
        progress: bool = False,
        logger=None,
        stack_store: StackCache | None = None,  # or any store with get_or_build (experiments.stack_store)
        callbacks: list | None = None,
        member_stacks: str = "shared",
        validate_on: str = "speakers",
        dann: DannSettings | dict | None = None,
    ):
        super().__init__(hidden, finetune, ensemble, seed, progress, logger, callbacks, validate_on, dann)
        self.pretrain, self.stack_store = pretrain, stack_store
        self.pretrain_data = choice(PretrainData, pretrain_data, "pretrain_data")
        self.member_stacks = choice(MemberStacks, member_stacks, "member_stacks")
        self._pretrain_settings()  # refused at construction, as finetune's

    def _pretrain_settings(self) -> PretrainSettings:
        if isinstance(self.pretrain, PretrainSettings):
            return self.pretrain
        return settings_from(PretrainSettings, "pretrain", self.pretrain or {})

    @property
    def needs_unlabeled_pool(self) -> bool:
        return self.pretrain_data is PretrainData.UNLABELED

    @property
    def learns_from_unlabeled(self) -> bool:
        return self.pretrain_data is not PretrainData.TRAIN or self.dann is not None

    def _pretraining_rows(self, x_train: np.ndarray, unlabeled: np.ndarray | None) -> np.ndarray:
        if self.pretrain_data is PretrainData.TRAIN or unlabeled is None:
            if self.pretrain_data is PretrainData.UNLABELED:
                raise ConfigError("pretrain_data is 'unlabeled' but fit was given no unlabeled rows")
            return x_train
        if self.pretrain_data is PretrainData.UNLABELED:
            return unlabeled
        return np.concatenate([x_train, unlabeled])

    def _initial_net(
        self, x_train: np.ndarray, x_val: np.ndarray, unlabeled: np.ndarray | None, seed: int
    ) -> FeedForward:
        if seed == self.seed or self.member_stacks is MemberStacks.OWN:  # shared: pretrained once per fit
            self.stack_ = self._stack(self._pretraining_rows(x_train, unlabeled), held_out=x_val, seed=seed)
        torch.manual_seed(seed)  # the head's init must not depend on whether the stack came from the cache
        return FeedForward.from_stack(self.stack_, dropout=self._finetune_settings().dropout)

    def prepare_stack(self, unlabeled: np.ndarray) -> RBMStack:
        """Pretrain, ahead of the fits, the stack of a DBN pretrained on the unlabeled pool alone: with
        a stack store, every fit of the same pool and seed then finds it there."""
        if not self.needs_unlabeled_pool:
            raise ConfigError("prepare_stack is for pretrain_data: unlabeled, whose stack depends on the pool alone")
        return self._stack(np.ascontiguousarray(unlabeled, dtype=np.float32), held_out=None)

    def _stack(self, x_pre: np.ndarray, held_out: np.ndarray | None, seed: int | None = None) -> RBMStack:
        """The stack for these rows and seed (the model's by default): from the store when it has it,
        else pretrained (and stored)."""
        pre, seed = self._pretrain_settings(), self.seed if seed is None else seed
        curves = self.logger if seed == self.seed else None  # one stack's curves: the others' look alike

        def build() -> RBMStack:
            from crossemo.models import training

            monitor = None if held_out is None or not len(held_out) else torch.from_numpy(held_out)
            rows = torch.from_numpy(x_pre)
            return training.pretrain_stack(rows, self.hidden, pre, monitor, curves, self.progress, seed)

        if self.stack_store is None:
            return build()
        key = stack_key(x_pre, self.hidden, pre, seed)
        return self.stack_store.get_or_build(key, x_pre.shape[1], self.hidden, build)

    #: the pretrained stack's weights live on in nets_ and in the stack store: don't save them twice
    _not_pickled = ("stack_",)


class DBNFeatureSVM(DBNValence):
    """The paper's baseline with the DBN in the sparse autoencoder's place: the pretrained RBM stack
    (no label seen) turns the features into its top layer's probabilities, on which the class-balanced
    SVM decides, as `svm` does on the features themselves. With the hidden sizes, pretraining
    settings and seed of a DBN, it uses that DBN's stacks (same key in the stack store)."""

    RUNTIME = frozenset({"logger", "stack_store", "progress"})

    def __init__(
        self,
        hidden=(512, 512),
        pretrain: PretrainSettings | dict | None = None,
        pretrain_data: str = "unlabeled",
        C: float = 1.0,
        seed: int = 0,
        progress: bool = False,
        logger=None,
        stack_store: StackCache | None = None,  # or any store with get_or_build (experiments.stack_store)
    ):
        super().__init__(hidden, pretrain, None, pretrain_data, 1, seed, progress, logger, stack_store)
        self.C = C

    def _fit(self, x, y, groups, unlabeled):
        self.extractor_ = self._stack(self._pretraining_rows(x, unlabeled), held_out=None)
        self.svm_ = calibrated_svm(C=self.C, seed=self.seed).fit(self._represent(x), y)

    def _represent(self, x: np.ndarray) -> np.ndarray:
        return self.extractor_.transform(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    def _proba(self, x):
        return self.svm_.predict_proba(self._represent(x))

    def _decide(self, x):
        return balanced_decisions(self.svm_, self._represent(x))


class FeedForwardValence(FineTunedNet):
    """The same network and fine-tuning without pretraining: does pretraining help?"""

    def _initial_net(
        self, x_train: np.ndarray, x_val: np.ndarray, unlabeled: np.ndarray | None, seed: int
    ) -> FeedForward:
        torch.manual_seed(seed)
        return FeedForward(x_train.shape[1], self.hidden, dropout=self._finetune_settings().dropout)
