"""Per-run metrics and their summary over seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

from crossemo.models.labels import CLASSES

METRICS = ("accuracy", "uar", "macro_f1", "majority_rate")


def valence_scores(true, predicted) -> dict:
    """Accuracy (the paper's metric), UAR (the field's), macro F1, the confusion matrix, and the
    majority-class rate of the test set (what always answering its commonest class scores)."""
    true, predicted = np.asarray(true).astype(str), np.asarray(predicted).astype(str)
    counts = pd.Series(true).value_counts()
    return {
        "accuracy": float(accuracy_score(true, predicted)),
        "uar": float(balanced_accuracy_score(true, predicted)),
        "macro_f1": float(f1_score(true, predicted, average="macro", labels=list(CLASSES), zero_division=0)),
        "majority_rate": float(counts.iloc[0] / len(true)),
        "confusion": confusion_matrix(true, predicted, labels=list(CLASSES)).tolist(),
        "n_test": int(len(true)),
    }


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(mean, standard deviation, CI low, CI high) with Student's t. A single value has no spread
    and no interval: those three are NaN (absent), never a zero-width interval that looks certain."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan"), float("nan")
    std = float(values.std(ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, len(values) - 1) * std / np.sqrt(len(values)))
    return mean, std, mean - half, mean + half


def summarize(results: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per configuration: each metric's mean, std and 95% CI over seeds (folds averaged first)."""
    per_seed = results.groupby(keys + ["seed"], dropna=False)[list(METRICS)].mean().reset_index()
    rows = []
    for key, group in per_seed.groupby(keys, dropna=False):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        row["seeds"] = len(group)
        for metric in METRICS:
            mean, std, low, high = mean_ci(group[metric])
            # The metrics are proportions: a t-interval past 0 or 1 says nothing more than the bound.
            row.update(
                {
                    metric: mean,
                    f"{metric}_std": std,
                    f"{metric}_ci_low": np.clip(low, 0.0, 1.0),
                    f"{metric}_ci_high": np.clip(high, 0.0, 1.0),
                }
            )  # NaN (one seed) stays NaN
        rows.append(row)
    return pd.DataFrame(rows)
