"""Registry and serving: a real `mlflow models serve` on 127.0.0.1 answering speech, features and bad requests."""

from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests

from crossemo.demo import write_wav
from crossemo.features import FeatureSettings, feature_names
from crossemo.models import SVMValence
from crossemo.registry import CHAMPION, MODEL_NAME, register, train_pipeline

from .conftest import SHARED_CORPORA, tone
from .test_experiments import feature_table

pytestmark = pytest.mark.slow


def wav_bytes(seconds: float, rate: int = 16000) -> bytes:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"crossemo-{os.getpid()}-{seconds}.wav"
    tone(path, seconds=seconds, rate=rate)
    data = path.read_bytes()
    path.unlink()
    return data


def speech_path(tmp_path: Path) -> Path:
    real = SHARED_CORPORA / "emodb/wav/03a01Fa.wav"
    return real if real.is_file() else tone(tmp_path / "speech.wav", seconds=1.5)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("registry")
    old = os.getcwd()
    os.chdir(root)
    uri = f"sqlite:///{root}/mlflow.db"
    table = feature_table()
    pipeline, uar = train_pipeline(table, SVMValence(), FeatureSettings())
    example = table[feature_names()].head(1).astype("float64")
    version, crowned = register(pipeline, uar, example, {"model": "svm", "corpora": "a,b,c"}, tracking_uri=uri)
    yield {"root": root, "uri": uri, "pipeline": pipeline, "example": example, "version": version, "crowned": crowned,
           "table": table}
    os.chdir(old)


def test_registration_sets_the_champion_alias_only_when_better(store):
    assert store["version"] == 1 and store["crowned"]
    client = mlflow.MlflowClient()
    v2, crowned2 = register(store["pipeline"], 0.01, store["example"], {"model": "svm"}, tracking_uri=store["uri"])
    assert (v2, crowned2) == (2, False)
    assert str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version) == "1"
    v3, crowned3 = register(store["pipeline"], 0.999, store["example"], {"model": "svm"}, tracking_uri=store["uri"])
    assert (v3, crowned3) == (3, True)
    assert str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version) == "3"
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@{CHAMPION}")
    assert model.metadata.signature is not None
    assert {c.name for c in model.metadata.signature.inputs.inputs} >= {"audio_base64", "audio_path", "loudness_sma3_amean"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(store):
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": store["uri"]}
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    process = subprocess.Popen([str(mlflow_cli), "models", "serve", "-m", f"models:/{MODEL_NAME}@{CHAMPION}",
                                "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                               cwd=store["root"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if process.poll() is not None:
            pytest.fail(f"server exited: {process.stderr.read().decode()[-2000:]}")
        time.sleep(1)
    else:
        process.kill()
        pytest.fail("server did not answer /ping within 180 s")
    yield url
    process.terminate()
    process.wait(timeout=30)


def ask(url: str, records: list[dict]) -> requests.Response:
    return requests.post(f"{url}/invocations", json={"dataframe_records": records}, timeout=120)


def test_server_answers_speech_paths_and_features(server, store, tmp_path):
    speech = speech_path(tmp_path)
    features = store["table"][feature_names()].head(2).astype(float).to_dict("records")
    records = [{"audio_base64": base64.b64encode(speech.read_bytes()).decode()}, {"audio_path": str(speech)}, *features]
    response = ask(server, records)
    assert response.status_code == 200, response.text
    answer = pd.DataFrame(response.json()["predictions"])
    assert answer.columns.tolist() == ["valence", "p_negative", "p_positive", "model_version"]
    assert set(answer["valence"]) <= {"negative", "positive"} and len(answer) == 4
    np.testing.assert_allclose(answer["p_negative"] + answer["p_positive"], 1, atol=1e-6)
    assert answer["p_negative"].iloc[0] == pytest.approx(answer["p_negative"].iloc[1])  # same audio, two routes
    champion = mlflow.MlflowClient(store["uri"]).get_model_version_by_alias(MODEL_NAME, CHAMPION)
    assert set(answer["model_version"]) == {str(champion.version)}


@pytest.mark.parametrize("record,message", [
    ({"audio_base64": base64.b64encode(b"this is not a wav file at all").decode()}, "corrupt or not audio"),
    ({"audio_base64": "@@not base64@@"}, "not valid base64"),
    ({"audio_base64": ""}, "missing columns"),
    ("empty", "empty"),
    ("short", "too short"),
    ("long", "too long"),
    ({"audio_path": "/nowhere/x.wav"}, "not a file"),
    ({"loudness_sma3_amean": 1.0}, "missing columns"),
    ({"speech": "hello"}, "missing columns"),
])
def test_bad_requests_get_400_with_a_reason_and_the_server_keeps_serving(server, store, record, message):
    if record == "empty":
        buffer = io.BytesIO()
        import wave

        with wave.open(buffer, "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        record = {"audio_base64": base64.b64encode(buffer.getvalue()).decode()}
    elif record in ("short", "long"):
        record = {"audio_base64": base64.b64encode(wav_bytes(0.1 if record == "short" else 61.0)).decode()}
    response = ask(server, [record])
    assert 400 <= response.status_code < 500, response.text
    assert message in response.json()["message"]
    features = store["table"][feature_names()].head(1).astype(float).to_dict("records")
    assert ask(server, features).status_code == 200
