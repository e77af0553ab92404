"""Peak memory of `crossemo predict` as the number of files grows: batches keep it flat.

    python bench/predict_memory.py [SIZES]     # default 300,1200,4800 files

Each size runs in a fresh folder: short synthetic recordings, a small registered SVM, then
`crossemo predict FOLDER -o answers.csv` as its own process, whose resident memory (and its feature
workers') is sampled every 0.1 s. Prints the peaks and the rows written. Before batching, the main process held every
file's features and answers at once and the model refused more than 256 rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one(size: int) -> None:
    sys.path.insert(0, str(REPO))
    import psutil

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
        command = [str(Path(sys.executable).parent / "crossemo"), "predict", str(tmp / "calls")]
        command += ["-o", str(tmp / "answers.csv"), "--tracking-uri", uri, "--params", "-"]
        process = psutil.Popen(command, stderr=subprocess.DEVNULL)
        main_peak = workers_peak = 0
        while process.poll() is None:  # resident memory of the command and of its feature workers
            try:
                main_peak = max(main_peak, process.memory_info().rss)
                for child in process.children(recursive=True):
                    workers_peak = max(workers_peak, child.memory_info().rss)
            except psutil.NoSuchProcess:
                pass
            time.sleep(0.1)
        assert process.returncode == 0, process.returncode
        rows = sum(1 for _ in open(tmp / "answers.csv")) - 1
    mib = lambda n: f"{n / 2**20:5.0f} MiB"
    print(f"{size:6d} files  {rows:6d} rows  predict's peak {mib(main_peak)}  largest worker {mib(workers_peak)}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        one(int(sys.argv[2]))
    else:
        for size in (sys.argv[1] if len(sys.argv) > 1 else "300,1200,4800").split(","):
            subprocess.run([sys.executable, __file__, "--one", size], check=True, stderr=subprocess.DEVNULL)
