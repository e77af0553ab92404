"""The model card on every registered version: what it learned from, how good it is, how to ask it.

MLflow shows it as the version's description; `crossemo serve`, `predict` and `evaluate` print its
first lines, so the first lines say what matters most (and warn of the synthetic demo corpora).
"""

from __future__ import annotations

import pandas as pd

from crossemo.experiments.normalization import MIN_SPEAKER_ROWS, LoneRows, Normalization

_LONE = {
    LoneRows.POOLED: "standardised with the training rows' pooled statistics and scored by the same model",
    LoneRows.OWN_MODEL: "standardised with the training rows' pooled statistics and scored by a second model "
    "trained on rows standardised that way",
}


def model_card(
    name: str, version: int, trained, model: str, corpora, synthetic: bool, comparison, adaptation: str = "none"
) -> str:
    """Markdown: the headline lines first, then training data, estimate, normalisation, requests, limits."""
    pipeline = trained.pipeline
    heldout = len(trained.heldout)
    lines = [
        f"# {name} v{version}: binary valence from speech ({model}, {pipeline.features.feature_set} features)",
        "",
        f"Trained on {', '.join(corpora) or 'unrecorded corpora'}: {trained.rows} utterances of "
        f"{trained.table.pipe(_speakers)} speakers"
        + (
            " -- the SYNTHETIC demo corpora, not speech: its answers on real recordings mean nothing."
            if synthetic
            else "."
        ),
        f"Held-out estimate: UAR {trained.heldout_uar:.3f} on {heldout} utterances of speakers it did not train on "
        f"(with their speaker column), {trained.heldout_uar_lone:.3f} one utterance at a time.",
        _adapted(trained.target, adaptation),
        "",
        f"Champion: {'crowned' if comparison.crown else 'not crowned'}: {comparison.reason}.",
        "",
        "## Training data",
        _data_table(trained),
        "",
        f"The held-out figure comes from a fit on {trained.fit_rows} utterances; the registered weights were "
        + ("then refitted on every one of the rows above." if trained.rows > trained.fit_rows else "not refitted."),
        "",
        "## Normalisation",
        _normalisation(pipeline),
        "",
        "## Requests",
        'POST /invocations with `{"dataframe_records": [...]}`; a row carries `audio_base64` (a base64 WAV, FLAC '
        "or OGG), `audio_path` (under the server's --audio-root), or the features by openSMILE's names, and "
        "optionally `speaker` (any string: a speaker, a session, a caller). Answers: valence, p_negative, "
        "p_positive, standardised_on (speaker or lone) and model_version. At most 256 rows per request; "
        "`crossemo predict --speaker-from` groups files offline the same way.",
        "",
        "## Limits",
        "- Two classes only (negative: anger, sadness, fear, disgust, boredom; positive: neutral, happiness, "
        "surprise, calm); other emotions are forced into one of them.",
        "- Learned from the corpora above (acted or broadcast speech in their languages); expect lower accuracy "
        "on other languages, spontaneous speech, children, noisy or telephone audio.",
        "- Utterances of 0.25 to 60 seconds, one speaker each; one channel is read.",
        "- A research model: not for decisions about people.",
    ]
    return "\n".join(lines)


def _adapted(target, adaptation: str) -> str:
    if target is None:
        return ""
    return (
        f"Adapted ({target.describe(adaptation)}) at registration: meant for those recordings; the held-out "
        "estimate is on the training corpora's speakers, not on them."
    )


def _speakers(table: pd.DataFrame) -> int:
    return int((table["corpus"].astype(str) + "/" + table["speaker"].astype(str)).nunique())


def _data_table(trained) -> str:
    table = trained.table
    rows = ["| corpus | speakers | utterances | negative | positive |", "|---|---|---|---|---|"]
    for corpus, part in table.groupby("corpus", sort=True):
        counts = part["valence"].value_counts()
        rows.append(
            f"| {corpus} | {part['speaker'].nunique()} | {len(part)} | {counts.get('negative', 0)} | "
            f"{counts.get('positive', 0)} |"
        )
    return "\n".join(rows)


def _normalisation(pipeline) -> str:
    if pipeline.normalization is Normalization.TRAIN:
        return "Every row is standardised with the training rows' pooled statistics, as in training."
    return (
        f"Trained on rows standardised per {pipeline.normalization} on their own label-free statistics. "
        f"The rows of one `speaker` in a request are standardised together when there are at least "
        f"{MIN_SPEAKER_ROWS} of them (training's rule); send a speaker's utterances in one request. "
        f"Other rows are lone: {_LONE[pipeline.lone_rows]}."
    )
