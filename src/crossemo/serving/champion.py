"""Champion against challenger on equal terms: both scored on rows neither of them trained on.

Validation figures measured on different data are not comparable (a model of the synthetic demo
corpora scores high on its own synthetic speakers). So the new version's held-out speakers are
kept to those the champion never trained on, and both models answer them as a served client
would be answered. Where no such rows exist, a stated rule decides, and the reason is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mlflow import MlflowClient

from crossemo.serving.fitting import served_uar
from crossemo.serving.versions import is_synthetic, registered_pipeline, training_speakers

MIN_COMPARED_ROWS = 20  # fewer unseen rows, or one class only, is no comparison


@dataclass(frozen=True)
class Comparison:
    """The decision and its evidence, as recorded on the new version."""

    crown: bool
    reason: str  # one line, printed and recorded
    champion: str | None = None  # the champion's version number, if there is one
    champion_uar: float | None = None
    challenger_uar: float | None = None
    rows: int = 0  # rows both were scored on

    def metrics(self) -> dict[str, float]:
        found = {"champion_uar": self.champion_uar, "challenger_uar": self.challenger_uar}
        return {k: v for k, v in found.items() if v is not None} | ({"compared_rows": self.rows} if self.rows else {})

    def tags(self) -> dict[str, str]:
        tags = {"crowned": "yes" if self.crown else "no", "crown_reason": self.reason}
        if self.champion is not None:
            tags["compared_with"] = f"v{self.champion}"
        return tags


def unseen_rows(client: MlflowClient, champion, trained, synthetic: bool) -> tuple[np.ndarray | None, str]:
    """(positions of the new version's held-out rows the champion never trained on, ''), or
    (None, why there is no fair comparison)."""
    who = f"champion v{champion.version}"
    theirs, ours = champion.tags.get("feature_set"), str(trained.pipeline.features.feature_set)
    if theirs != ours:
        return None, f"{who} reads {theirs or 'unrecorded'} features, this version {ours}"
    theirs_synthetic = is_synthetic(champion)
    if theirs_synthetic != synthetic:
        kind = {True: "the synthetic demo corpora", False: "real corpora"}
        return None, f"{who} trained on {kind[theirs_synthetic]}, this version on {kind[synthetic]}"
    seen = training_speakers(client, champion.run_id)
    if seen is None:
        return None, f"{who} recorded no training speakers"
    keys = trained.keys[trained.heldout]
    rows = trained.heldout[~np.isin(keys, list(seen))]
    classes = set(trained.table["valence"].to_numpy()[rows])
    if len(rows) < MIN_COMPARED_ROWS or len(classes) < 2:
        shared = len(set(keys) & set(seen))
        return None, (
            f"{who} trained on {shared} of this version's {len(set(keys))} held-out speakers: "
            f"{len(rows)} rows unseen by both"
        )
    return rows, ""


def compare_with_champion(
    client: MlflowClient, champion, trained, synthetic: bool, crown: bool | None = None
) -> Comparison:
    """Score the `champion` (a registered ModelVersion, None if there is none) and the new version
    (its fit before the refit) on the held-out rows neither trained on, with their speaker column,
    and crown the better; `crown` True / False decides by hand."""
    if champion is None:
        return Comparison(crown is not False, "no champion yet" + (": not crowned by hand" if crown is False else ""))
    rows, why = unseen_rows(client, champion, trained, synthetic)
    figures = {}
    if rows is not None:
        served = registered_pipeline(f"models:/{champion.name}/{champion.version}")
        x, y, keys = trained.x[rows], trained.table["valence"].to_numpy()[rows], trained.keys[rows]
        figures = {
            "champion_uar": served_uar(served, x, y, keys),
            "challenger_uar": served_uar(trained.validation, x, y, keys),
            "rows": len(rows),
        }
        why = (
            f"UAR {figures['challenger_uar']:.3f} against champion v{champion.version}'s "
            f"{figures['champion_uar']:.3f} on {len(rows)} held-out rows neither trained on"
        )
    version = str(champion.version)
    if crown is not None:
        return Comparison(crown, f"{'crowned' if crown else 'not crowned'} by hand; {why}", version, **figures)
    if figures:
        return Comparison(figures["challenger_uar"] > figures["champion_uar"], why, version, **figures)
    if is_synthetic(champion) and not synthetic:
        rule = "a model trained on real corpora replaces one trained on the synthetic demo corpora"
        return Comparison(True, f"no fair comparison ({why}); {rule}", version)
    return Comparison(False, f"no fair comparison ({why}); the crown stays (--crown overrides)", version)
