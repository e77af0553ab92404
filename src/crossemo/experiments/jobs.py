"""What each scenario asks for: its jobs, one split (train and test rows) and protocol each, per seed."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from crossemo.errors import ConfigError
from crossemo.experiments.protocols import (
    Split,
    cross_corpus,
    target_fraction,
    within_random,
    within_sessions,
    within_speaker_folds,
)
from crossemo.experiments.settings import ExperimentSettings, Scenario, TargetAudio


@dataclass(frozen=True)
class Job:
    protocol: str  # random / speaker (within), audio_<TargetAudio> (transfer), or the scenario's name
    split: Split
    x: np.ndarray | None = None  # this job's own normalised features (training-set statistics) if any
    target_audio: TargetAudio = TargetAudio.USED  # whether the test corpus' label-free audio may be used


def _trainable(corpora, s: ExperimentSettings) -> list[str]:
    """The corpora whose labels may train: a test-only corpus is only ever a target."""
    return [c for c in corpora if c not in s.test_only]


def _within(table, corpora, languages, s: ExperimentSettings, seed):
    jobs = []
    for corpus in _trainable(corpora, s):
        if "random" in s.within_protocols:
            jobs += [Job("random", split) for split in within_random(table, corpus, seed, s.test_size)]
        if "speaker" in s.within_protocols:
            jobs += [Job("speaker", split) for split in within_speaker_folds(table, corpus, seed, s.speaker_folds)]
        if "sessions" in s.within_protocols:  # corpora with sessions (IEMOCAP) only
            jobs += [Job("sessions", split) for split in within_sessions(table, corpus)]
    return jobs


def _single_source(table, corpora, languages, s, seed):
    return [
        Job("single_source", cross_corpus(table, [src], tgt))
        for src in _trainable(corpora, s)
        for tgt in corpora
        if src != tgt
    ]


def _target_fraction(table, corpora, languages, s, seed):
    """All other corpora as the source, plus a growing share of the target (so never a test-only one)."""
    trainable = _trainable(corpora, s)
    return [
        Job("target_fraction", target_fraction(table, [c for c in trainable if c != tgt], tgt, f, seed))
        for tgt in trainable
        for f in s.fractions
    ]


def _multi_source(table, corpora, languages, s, seed):
    """Every set of `multi_source_size` other corpora spanning as many languages, tested on the target."""
    jobs = []
    for tgt in corpora:
        others = [c for c in _trainable(corpora, s) if c != tgt]
        for sources in itertools.combinations(others, s.multi_source_size):
            if len({languages[c] for c in sources}) == len(sources):
                jobs.append(Job("multi_source", cross_corpus(table, list(sources), tgt)))
    return jobs


def _leave_one_out(table, corpora, languages, s, seed):
    return [
        Job("leave_one_out", cross_corpus(table, [c for c in _trainable(corpora, s) if c != tgt], tgt))
        for tgt in corpora
    ]


def _transfer(table, corpora, languages, s: ExperimentSettings, seed):
    """The named training corpora -> each test corpus, in each of `target_audio`'s ways (TargetAudio)."""
    tests = list(s.test_corpora or s.test_only)
    if not tests:
        raise ConfigError(
            "the transfer scenario has no test corpus: mark corpora test_only: true in params.yaml's "
            "corpora, or list experiments.transfer.test_corpora"
        )
    train = list(s.train_corpora or [c for c in _trainable(corpora, s) if c not in tests])
    if set(train) & set(tests) or not train:
        raise ConfigError(
            f"experiments.transfer: training corpora {train} and test corpora {tests} must be disjoint and not empty"
        )
    return [
        Job(f"audio_{audio}", cross_corpus(table, train, target), target_audio=audio)
        for audio in s.target_audio
        for target in tests
    ]


PROTOCOLS = {
    Scenario.WITHIN: _within,
    Scenario.SINGLE_SOURCE: _single_source,
    Scenario.TARGET_FRACTION: _target_fraction,
    Scenario.MULTI_SOURCE: _multi_source,
    Scenario.LEAVE_ONE_OUT: _leave_one_out,
    Scenario.TRANSFER: _transfer,
}
