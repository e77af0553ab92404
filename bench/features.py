"""Feature-extraction benchmark: real-time factor, one worker against two, warm rerun against cold.

    python bench/features.py [--corpora ../shared/corpora] [--limit N]

Real-time factor = seconds of audio per second of wall time. All figures come from one run,
so that a busy shared machine slows every measurement alike; the ratios are what to compare.
Goals: two workers >= 1.7x one worker; a warm rerun >= 20x faster than a cold one.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import soundfile as sf

from crossemo.data.corpora import load_corpus
from crossemo.data.features import FeatureSettings, extract

REAL = {"emodb": "emodb", "savee": "savee", "emovo": "emovo", "urdu": "urdu"}


def audio_paths(root: Path, limit: int | None) -> list[Path]:
    paths = []
    for name, folder in REAL.items():
        table = load_corpus(name, root / folder)
        paths += [root / folder / p for p in table["path"]]
    return paths[:: max(1, len(paths) // limit)] if limit else paths


def timed(paths: list[Path], settings: FeatureSettings) -> float:
    start = time.perf_counter()
    _, bad = extract(paths, settings, progress=f"{settings.workers} worker(s)")
    assert not bad, bad
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared/corpora")
    parser.add_argument("--limit", type=int, help="use about this many files, spread over the corpora")
    args = parser.parse_args()
    paths = audio_paths(args.corpora, args.limit)
    audio_seconds = sum(sf.info(str(p)).duration for p in paths)
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
        cold_1 = timed(paths, FeatureSettings(workers=1, cache_dir=one))
        cold_2 = timed(paths, FeatureSettings(workers=2, cache_dir=two))
        warm_2 = timed(paths, FeatureSettings(workers=2, cache_dir=two))
    print(f"{len(paths)} files, {audio_seconds:.0f} s of audio")
    for label, seconds in (("cold, 1 worker", cold_1), ("cold, 2 workers", cold_2), ("warm, 2 workers", warm_2)):
        print(f"{label:16s} {seconds:7.1f} s   real-time factor {audio_seconds / seconds:8.1f}")
    print(f"two_workers_speedup={cold_1 / cold_2:.2f} (goal >= 1.7) warm_speedup={cold_2 / warm_2:.1f} (goal >= 20)")


if __name__ == "__main__":
    main()
