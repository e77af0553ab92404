"""FAU-AIBO (INTERSPEECH 2009 Emotion Challenge): `wav/<school>_<child>_<NNN>_<NN>.wav` plus chunk label files.

The 2-class file (NEG/IDL) is the paper's valence task; the 5-class one (A/E/N/P/R) is read with
`labels="5cl"`. The school (Ohm: train, Mont: test) is kept as a grouping column.
"""

from __future__ import annotations

import re
from pathlib import Path

from crossemo.data.corpora._scan import audio_files, lookup, match, rel, require_dir
from crossemo.data.corpora.schema import CorpusError, Gender

CHUNK = re.compile(r"(?P<school>Ohm|Mont)_(?P<child>\d\d)_\d{3}_\d\d")
EMOTIONS = {
    "2cl": {"NEG": "negative", "IDL": "idle"},
    "5cl": {"A": "anger", "E": "emphatic", "N": "neutral", "P": "positive", "R": "rest"},
}


def scan(root: Path, labels: str = "2cl") -> list[dict]:
    root = require_dir("aibo", root, "the IS2009EmotionChallenge folder with wav/ and labels/")
    if labels not in EMOTIONS:
        raise CorpusError("aibo", root, f"unknown label set {labels!r}", "labels: 2cl or 5cl")
    label_file = next(iter(sorted(root.rglob(f"chunk_labels_{labels}_corpus.txt"))), None)
    if label_file is None:
        raise CorpusError(
            "aibo",
            root,
            f"chunk_labels_{labels}_corpus.txt not found",
            "it under labels/IS2009EmotionChallenge/ or at the corpus root",
        )
    wavs = {p.stem: p for p in audio_files(root)}
    rows = []
    for number, line in enumerate(label_file.read_text(encoding="latin-1").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        where = f"{label_file}:{number}"
        if len(fields) < 2:
            raise CorpusError("aibo", where, f"malformed line {line!r}", "'<chunk id> <class> <confidence>'")
        chunk, code = fields[0].removesuffix(".wav"), fields[1]
        m = match("aibo", CHUNK, where, chunk, "<Ohm|Mont>_<child>_<NNN>_<NN>, e.g. Ohm_01_015_00")
        if chunk not in wavs:
            raise CorpusError("aibo", where, f"no audio for chunk {chunk}", f"{chunk}.wav under wav/")
        rows.append(
            {
                "speaker": f"{m['school']}_{m['child']}",
                "gender": Gender.UNKNOWN,
                "utterance_id": chunk,
                "path": rel(wavs[chunk], root),
                "emotion": lookup("aibo", EMOTIONS[labels], code, where, f"{labels} class"),
                "school": m["school"],
            }
        )
    return rows
