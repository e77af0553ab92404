"""Peak memory of `crossemo predict` as the number of files grows: batches keep it flat.

    python bench/predict_memory.py [SIZES]     # default 300,1200,4800 files

Each size runs in a fresh process (so the peaks are its own): short synthetic recordings, a small
registered SVM, `crossemo predict FOLDER -o answers.csv`. Prints the main process' peak RSS, the
feature workers' largest, and the rows written. Before batching, the main process held every
file's features and answers at once and the model refused more than 256 rows.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one(size: int) -> None:
    sys.path.insert(0, str(REPO))
    from crossemo.cli import main
    from crossemo.data.features import FeatureSettings
    from crossemo.models.baselines import SVMValence
    from crossemo.serving.fitting import train_pipeline
    from crossemo.serving.registry import register
    from tests.conftest import feature_table, tone

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.chdir(tmp)  # the feature cache too: each size starts cold
        uri = f"sqlite:///{tmp}/mlflow.db"
        register(train_pipeline(feature_table(), SVMValence(), FeatureSettings()), {"model": "bench"}, tracking_uri=uri)
        (tmp / "calls").mkdir()
        for i in range(size):
            tone(tmp / "calls" / f"{i:05d}.wav", 0.4, seed=i)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            main(
                ["predict", str(tmp / "calls"), "-o", str(tmp / "answers.csv"), "--tracking-uri", uri, "--params", "-"]
            )
        except SystemExit as stop:
            assert not stop.code, stop.code
        rows = sum(1 for _ in open(tmp / "answers.csv")) - 1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        f"{size:6d} files  {rows:6d} rows  main peak {peak / 1024:6.0f} MiB (before predict {before / 1024:.0f})"
        f"  largest worker {workers / 1024:5.0f} MiB"
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        one(int(sys.argv[2]))
    else:
        for size in (sys.argv[1] if len(sys.argv) > 1 else "300,1200,4800").split(","):
            subprocess.run([sys.executable, __file__, "--one", size], check=True, stderr=subprocess.DEVNULL)
