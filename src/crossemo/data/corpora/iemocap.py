"""IEMOCAP: labels in `SessionN/dialog/EmoEvaluation/<dialog>.txt`, audio in `SessionN/sentences/wav/`."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from crossemo.data.corpora._scan import lookup, match, require_dir
from crossemo.data.corpora.schema import CorpusError, Gender

log = logging.getLogger(__name__)

# Fields are parsed from the right: dialog ids such as Ses03M_impro05a break fixed offsets.
UTTERANCE = re.compile(
    r"(?P<dialog>Ses(?P<session>0[1-5])[FM]_(?:impro\d\d[ab]?|script\d\d_\d[ab]?))_(?P<speaker>[FM])\d{3}"
)
EMOTIONS = {
    "neu": "neutral",
    "hap": "happiness",
    "exc": "excitement",
    "sad": "sadness",
    "ang": "anger",
    "fru": "frustration",
    "fea": "fear",
    "sur": "surprise",
    "dis": "disgust",
    "oth": "other",
    "xxx": "undecided",
}


def scan(root: Path) -> list[dict]:
    root = require_dir("iemocap", root, "IEMOCAP_full_release with Session1..Session5")
    label_files = sorted(p for p in root.glob("Session[1-5]/dialog/EmoEvaluation/*.txt") if not p.name.startswith("."))
    if not label_files:
        raise CorpusError("iemocap", root, "no label files found", "SessionN/dialog/EmoEvaluation/<dialog>.txt")
    rows, missing = [], 0
    for label_file in label_files:
        for utterance, code in _summary_lines(label_file):
            m = match("iemocap", UTTERANCE, label_file, utterance, "Ses01F_impro01_F000-style utterance ids")
            session = int(m["session"])
            wav = Path(f"Session{session}/sentences/wav/{m['dialog']}/{utterance}.wav")
            if not (root / wav).is_file():
                missing += 1  # public loaders skip labels without audio; we count them
                continue
            rows.append(
                {
                    "speaker": f"Ses{m['session']}{m['speaker']}",
                    "gender": Gender.FEMALE if m["speaker"] == "F" else Gender.MALE,
                    "utterance_id": utterance,
                    "path": wav.as_posix(),
                    "emotion": lookup("iemocap", EMOTIONS, code, label_file, "emotion code"),
                    "session": session,
                    "improvised": "_impro" in m["dialog"],
                }
            )
    if missing:
        log.warning("iemocap: %d labelled utterances have no wav file and were skipped", missing)
    return rows


def _summary_lines(label_file: Path):
    """(utterance id, code) from the `[start - end]<TAB>id<TAB>code<TAB>[V, A, D]` lines."""
    # Some copies are not valid UTF-8; latin-1 decodes any byte.
    for line in label_file.read_text(encoding="latin-1").splitlines():
        if line.startswith("["):
            fields = line.split("\t")
            if len(fields) < 3:
                raise CorpusError(
                    "iemocap",
                    label_file,
                    f"malformed summary line {line!r}",
                    "[start - end], utterance id, code, [V, A, D] separated by tabs",
                )
            yield fields[1].strip(), fields[2].strip()
