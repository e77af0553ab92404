"""Damaged cache entries (cut short by a killed run, or corrupted on disk) are reported, recomputed, never used."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from crossemo.data.features import FeatureCache, feature_names
from crossemo.models.nets import RBMStack
from crossemo.models.stacks import StackCache


def damage(path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "flipped":
        data[len(data) // 3] ^= 0x01  # one bit: the file still parses, its numbers are wrong
        path.write_bytes(bytes(data))
    else:
        path.write_bytes(b"")


@pytest.mark.parametrize("how", ["truncated", "flipped", "empty"])
def test_a_damaged_feature_entry_is_reported_removed_and_not_used(tmp_path, caplog, how):
    cache = FeatureCache(tmp_path, "settings", len(feature_names()))
    values = np.linspace(-1, 1, len(feature_names()), dtype=np.float32)
    cache.put("ab12", values)
    np.testing.assert_array_equal(cache.get("ab12"), values)
    [entry] = list(tmp_path.rglob("ab12*"))
    damage(entry, how)
    with caplog.at_level(logging.WARNING):
        assert cache.get("ab12") is None
    assert str(entry) in caplog.text and "recomputed" in caplog.text
    assert not entry.exists()
    cache.put("ab12", values)  # recomputed: good again
    np.testing.assert_array_equal(cache.get("ab12"), values)


@pytest.mark.parametrize("how", ["truncated", "flipped"])
def test_a_damaged_stack_is_rebuilt_not_loaded(tmp_path, caplog, how):
    builds = []

    def build():
        builds.append(1)
        torch.manual_seed(len(builds))
        return RBMStack(4, (3,))

    cache = StackCache(tmp_path)
    first = cache.get_or_build("k", 4, (3,), build)
    [entry] = [p for p in tmp_path.iterdir() if p.name.startswith("k.") and not p.name.endswith(".lock")]
    damage(entry, how)
    with caplog.at_level(logging.WARNING):
        second = cache.get_or_build("k", 4, (3,), build)
    assert len(builds) == 2 and str(entry) in caplog.text
    assert not torch.equal(first.layers[0].weight, second.layers[0].weight)  # the rebuilt one, not the damaged one
    again = cache.get_or_build("k", 4, (3,), build)
    assert len(builds) == 2 and torch.equal(again.layers[0].weight, second.layers[0].weight)
