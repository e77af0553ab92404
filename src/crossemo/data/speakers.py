"""Speakers across corpora: a speaker id is only unique within its corpus."""

from __future__ import annotations

import pandas as pd


def speaker_keys(table: pd.DataFrame) -> pd.Series:
    """A speaker's id within its corpus: speaker ids repeat across corpora (e.g. 'f1', '03')."""
    return table["corpus"].astype(str) + "/" + table["speaker"].astype(str)
