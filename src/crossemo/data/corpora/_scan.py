"""Helpers every loader shares: finding audio files and building the table rows."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from crossemo.data.corpora.schema import CorpusError


def require_dir(corpus: str, root: Path, expected: str) -> Path:
    """Fail with a message that says where the corpus should be, not a bare FileNotFoundError."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(
            corpus, root, "corpus folder not found", f"{expected} (set corpora.<name>.root in params.yaml)"
        )
    return root


def audio_files(root: Path, pattern: str = "**/*.wav") -> Iterator[Path]:
    """Audio files below root, sorted, without macOS `._*` twins and other dot files."""
    for path in sorted(root.glob(pattern)):
        if not any(part.startswith(".") for part in path.relative_to(root).parts) and path.is_file():
            yield path


def match(corpus: str, pattern: re.Pattern[str], path: Path, text: str, expected: str) -> re.Match[str]:
    """Parse a name with a loader's regex or fail naming the file: never drop it silently."""
    found = pattern.fullmatch(text)
    if found is None:
        raise CorpusError(corpus, path, f"cannot parse the name {text!r}", expected)
    return found


def lookup(corpus: str, table: dict[str, str], key: str, path: Path | str, what: str) -> str:
    """Translate a corpus code to the canonical vocabulary, failing on an unknown code."""
    try:
        return table[key]
    except KeyError:
        known = ", ".join(sorted(table))
        raise CorpusError(corpus, path, f"unknown {what} {key!r}", f"one of {known}") from None


def unique_by_name(paths: Iterable[Path]) -> list[Path]:
    """Keep the first file of each basename: some downloads hold a corpus twice, nested."""
    seen: dict[str, Path] = {}
    for path in paths:
        seen.setdefault(path.name, path)
    return list(seen.values())


def rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()
