"""Serving benchmark: a real `crossemo serve` (MLflow's scoring app) on 127.0.0.1 against the model in-process.

    python bench/serving.py [--requests 30] [--batch 16] [--clients 8] [--per-client 50]

Registers a small model in a temporary store, starts the server, then measures in one run:
request latency for one utterance (median and 95th percentile, base64 WAV in, valence out),
the same for the 88 features alone, throughput for batches of utterances, and the in-process
pyfunc on the same inputs. Then a load check: `--clients` concurrent clients sending
`--per-client` one-utterance requests each; it prints the error count (goal 0), median and 95th
percentile latency under load, and the server's resident memory before and after (goal: growth
under 50 MB). Speech comes from ../shared/corpora, or synthetic clips without it.
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import requests

from crossemo.data.demo import generate
from crossemo.data.features import FeatureSettings, feature_names
from crossemo.models.networks import DBNValence
from crossemo.serving.fitting import train_pipeline
from crossemo.serving.registry import MODEL_NAME, register

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"


def speech_files(n: int, workdir: Path) -> list[Path]:
    real = sorted((CORPORA / "emodb" / "wav").glob("*.wav"))
    if real:
        return real[:n]
    generate(workdir / "demo", names=["savee"])
    return sorted((workdir / "demo" / "savee").glob("*.wav"))[:n]


def synthetic_table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    y = np.where(rng.random(300) < 0.5, "negative", "positive")
    x = rng.normal(0, 1, (300, 88)) + (y == "positive")[:, None] * 0.8
    table = pd.DataFrame(x.astype(np.float32), columns=feature_names())
    return table.assign(corpus="synthetic", speaker=[f"s{i % 10}" for i in range(300)], valence=y)


def start_server(uri: str, cwd: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    process = subprocess.Popen(
        ["crossemo", "serve", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(180):
        try:
            if requests.get(f"{url}/ping", timeout=2).ok:
                return process, url
        except requests.ConnectionError:
            time.sleep(1)
    process.kill()
    raise SystemExit("the server did not start within 180 s")


def latencies(call, n: int) -> np.ndarray:
    call()  # warm-up: the first request loads openSMILE
    times = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return np.array(times)


def post(url: str, records: list[dict]) -> None:
    response = requests.post(f"{url}/invocations", json={"dataframe_records": records}, timeout=300)
    response.raise_for_status()


def resident_mb(pid: int) -> float:
    """The process' resident memory (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load_check(url: str, records: list[dict], clients: int, per_client: int) -> tuple[int, np.ndarray]:
    """(errors, latencies) of `clients` threads each sending `per_client` requests at once."""
    from concurrent.futures import ThreadPoolExecutor

    def client(_) -> list[float | None]:
        times = []
        with requests.Session() as session:
            for _ in range(per_client):
                start = time.perf_counter()
                try:
                    ok = session.post(f"{url}/invocations", json={"dataframe_records": records}, timeout=300).ok
                except requests.RequestException:
                    ok = False
                times.append(time.perf_counter() - start if ok else None)
        return times

    with ThreadPoolExecutor(clients) as pool:
        times = [t for batch in pool.map(client, range(clients)) for t in batch]
    return sum(t is None for t in times), np.array([t for t in times if t is not None])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-client", dest="per_client", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.chdir(tmp)
        uri = f"sqlite:///{tmp}/mlflow.db"
        table = synthetic_table()
        model = DBNValence(hidden=(1000, 1000, 2000), pretrain={"epochs": 1}, finetune={"max_epochs": 2})
        trained = train_pipeline(table, model, FeatureSettings(), refit=False)
        pipeline = trained.pipeline
        register(trained, {"model": "bench"}, tracking_uri=uri)
        files = speech_files(args.batch, tmp)
        one = [{"audio_base64": base64.b64encode(files[0].read_bytes()).decode()}]
        batch = [{"audio_base64": base64.b64encode(f.read_bytes()).decode()} for f in files]
        features = [dict(zip(feature_names(), map(float, pipeline.audio_features(str(files[0]), "x"))))]
        local = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
        process, url = start_server(uri, tmp)
        try:
            served_one = latencies(lambda: post(url, one), args.requests)
            served_features = latencies(lambda: post(url, features), args.requests)
            served_batch = latencies(lambda: post(url, batch), max(3, args.requests // 5))
            memory_before = resident_mb(process.pid)
            errors, under_load = load_check(url, one, args.clients, args.per_client)
            memory_after = resident_mb(process.pid)
        finally:
            process.terminate()
        local_one = latencies(lambda: local.predict(pd.DataFrame(one)), args.requests)
        local_batch = latencies(lambda: local.predict(pd.DataFrame(batch)), max(3, args.requests // 5))
    ms = lambda a: f"median {1000 * np.median(a):7.1f} ms  p95 {1000 * np.percentile(a, 95):7.1f} ms"
    print(f"speech: {files[0].name} and {len(files)} files for batches")
    print(f"served, one utterance (base64 WAV): {ms(served_one)}")
    print(f"served, one row of 88 features:     {ms(served_features)}")
    print(f"in-process, one utterance:          {ms(local_one)}")
    print(f"served, batches of {len(batch)}: {len(batch) / np.median(served_batch):6.1f} utterances/s")
    print(f"in-process, batches of {len(batch)}: {len(batch) / np.median(local_batch):6.1f} utterances/s")
    print(
        f"load: {args.clients} clients x {args.per_client} requests: {errors} errors, {ms(under_load)}, "
        f"server memory {memory_before:.0f} -> {memory_after:.0f} MB ({memory_after - memory_before:+.0f} MB)"
    )
    print(
        f"served_over_inprocess_latency={np.median(served_one) / np.median(local_one):.2f} "
        f"served_over_inprocess_throughput={np.median(local_batch) / np.median(served_batch):.2f} "
        f"load_errors={errors} load_p95_ms={1000 * np.percentile(under_load, 95):.0f} "
        f"memory_growth_mb={memory_after - memory_before:.0f}"
    )


if __name__ == "__main__":
    main()
