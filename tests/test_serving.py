"""Registry and serving: a real `mlflow models serve` on 127.0.0.1 answering speech, features and bad requests."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests

from crossemo.data.features import FeatureSettings, feature_names
from crossemo.models.baselines import SVMValence
from crossemo.serving.fitting import train_pipeline
from crossemo.serving.registry import CHAMPION, MODEL_NAME, register

from .conftest import SHARED_CORPORA, feature_table, free_port, speaker_table, tone, wait_for_http

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
    with pytest.MonkeyPatch.context() as patch:  # the working directory comes back, whatever happens
        patch.chdir(root)
        yield registered_store(root)


def registered_store(root: Path) -> dict:
    uri = f"sqlite:///{root}/mlflow.db"
    table = speaker_table()
    trained = train_pipeline(table, SVMValence(), FeatureSettings(), normalization="speaker", lone_rows="own_model")
    done = register(trained, {"model": "svm"}, tracking_uri=uri, corpora=["a", "b", "c"], synthetic=True)
    return {
        "root": root,
        "uri": uri,
        "pipeline": trained.pipeline,
        "version": done.version,
        "crowned": done.crowned,
        "table": table,
    }


def test_the_registered_model_asks_for_audio_features_and_an_optional_speaker(store):
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@{CHAMPION}")
    inputs = {c.name: c for c in model.metadata.signature.inputs.inputs}
    assert {"audio_base64", "audio_path", "speaker", "loudness_sma3_amean"} <= set(inputs)
    assert not inputs["speaker"].required
    outputs = [c.name for c in model.metadata.signature.outputs.inputs]
    assert outputs == ["valence", "p_negative", "p_positive", "standardised_on", "model_version"]


def test_a_dbn_pretrained_on_a_pool_alone_trains_for_registration():
    """registry.model: dbn_demo has pretrain_data: unlabeled; registration gives it the training rows as its pool."""
    from crossemo.models.networks import DBNValence

    table = feature_table()
    dbn = DBNValence(
        hidden=(8,),
        pretrain_data="unlabeled",
        pretrain={"epochs": 1, "batch_size": 64},
        finetune={"max_epochs": 2, "batch_size": 64},
    )
    assert dbn.needs_unlabeled_pool and not SVMValence().needs_unlabeled_pool
    trained = train_pipeline(table, dbn, FeatureSettings())
    assert tuple(trained.pipeline.model.stack_.layers[0].weight.shape) == (88, 8)
    assert trained.pipeline.model is not trained.validation.model  # refitted on every row


def lying_wav(claimed_bytes: int = 0xFFFFFFF0, rate: int = 8000, payload: bytes = b"\x00\x01" * 8000) -> bytes:
    """A 16-bit mono WAV whose header claims far more data (hours) than it holds."""
    import struct

    header = b"RIFF" + struct.pack("<I", min(36 + claimed_bytes, 0xFFFFFFFF)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    return header + b"data" + struct.pack("<I", claimed_bytes) + payload


@pytest.fixture(scope="module")
def server(store):
    port = free_port()
    audio_root = store["root"] / "audio"
    audio_root.mkdir()
    env = {**os.environ, "MLFLOW_TRACKING_URI": store["uri"], "CROSSEMO_AUDIO_ROOT": str(audio_root)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["CROSSEMO_MAX_BODY_BYTES"] = str(8 * 2**20)
    log = store["root"] / "server.log"  # a file, not a pipe: a full pipe would stall the server
    with log.open("w") as out:
        process = subprocess.Popen(
            ["crossemo", "serve", "--port", str(port)],  # the README's command
            cwd=store["root"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/ping", process, timeout=180, log=log)
    yield url
    process.terminate()
    process.wait(timeout=30)


def ask(url: str, records: list[dict]) -> requests.Response:
    return requests.post(f"{url}/invocations", json={"dataframe_records": records}, timeout=120)


def test_server_answers_speech_paths_and_features(server, store, tmp_path):
    speech = speech_path(tmp_path)
    (store["root"] / "audio" / "speech.wav").write_bytes(speech.read_bytes())
    features = store["table"][feature_names()].head(2).astype(float).to_dict("records")
    records = [
        {"audio_base64": base64.b64encode(speech.read_bytes()).decode()},
        {"audio_path": "speech.wav"},
        *features,
    ]
    response = ask(server, records)
    assert response.status_code == 200, response.text
    answer = pd.DataFrame(response.json()["predictions"])
    assert answer.columns.tolist() == ["valence", "p_negative", "p_positive", "standardised_on", "model_version"]
    assert set(answer["valence"]) <= {"negative", "positive"} and len(answer) == 4
    np.testing.assert_allclose(answer["p_negative"] + answer["p_positive"], 1, atol=1e-6)
    assert answer["p_negative"].iloc[0] == pytest.approx(answer["p_negative"].iloc[1])  # same audio, two routes
    champion = mlflow.MlflowClient(store["uri"]).get_model_version_by_alias(MODEL_NAME, CHAMPION)
    assert set(answer["model_version"]) == {str(champion.version)}


def test_a_speakers_rows_in_one_request_are_standardised_together(server, store):
    table = speaker_table(seed=3)
    rows = table[feature_names()].astype(float).iloc[:40].to_dict("records")
    with_speaker = [{**row, "speaker": "caller-7"} for row in rows]
    answer = pd.DataFrame(ask(server, with_speaker).json()["predictions"])
    assert (answer["standardised_on"] == "speaker").all()
    x = table[feature_names()].to_numpy(np.float32)[:40]
    expected = store["pipeline"].model.predict_proba((x - x.mean(0)) / x.std(0))[:, 1]
    np.testing.assert_allclose(answer["p_positive"], expected, rtol=1e-4, atol=1e-6)
    lone = pd.DataFrame(ask(server, rows).json()["predictions"])
    assert (lone["standardised_on"] == "lone").all()


@pytest.mark.parametrize(
    "record,message",
    [
        ({"audio_base64": base64.b64encode(b"this is not a wav file at all").decode()}, "corrupt or not audio"),
        ({"audio_base64": "@@not base64@@"}, "not valid base64"),
        ({"audio_base64": ""}, "missing columns"),
        ("empty", "empty"),
        ("short", "too short"),
        ("long", "too long"),
        ({"audio_path": "/nowhere/x.wav"}, "outside the server's audio root"),
        ({"audio_path": "/etc/hostname"}, "outside the server's audio root"),
        ({"audio_path": "../mlflow.db"}, "must not contain '..'"),
        ({"audio_path": "missing.wav"}, "not a file under the server's audio root"),
        ("escaping link", "outside the server's audio root"),
        ("lying header", "its header claims"),
        ({"loudness_sma3_amean": 1.0}, "missing columns"),
        ({"speech": "hello"}, "missing columns"),
    ],
)
def test_bad_requests_get_400_with_a_reason_and_the_server_keeps_serving(server, store, record, message):
    if record == "empty":
        buffer = io.BytesIO()
        import wave

        with wave.open(buffer, "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        record = {"audio_base64": base64.b64encode(buffer.getvalue()).decode()}
    elif record == "escaping link":
        link = store["root"] / "audio" / "escape.wav"
        if not link.is_symlink():
            link.symlink_to(store["root"] / "mlflow.db")
        record = {"audio_path": "escape.wav"}
    elif record == "lying header":
        record = {"audio_base64": base64.b64encode(lying_wav()).decode()}
    elif record in ("short", "long"):
        record = {"audio_base64": base64.b64encode(wav_bytes(0.1 if record == "short" else 61.0)).decode()}
    response = ask(server, [record])
    assert 400 <= response.status_code < 500, response.text
    assert message in response.json()["message"]
    features = store["table"][feature_names()].head(1).astype(float).to_dict("records")
    assert ask(server, features).status_code == 200


def _encoded(signal: np.ndarray, rate: int, format: str, subtype: str | None = None) -> str:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, signal, rate, format=format, subtype=subtype)
    return base64.b64encode(buffer.getvalue()).decode()


def hostile_requests(store, rng: np.random.Generator) -> list[tuple[str, dict]]:
    """(what, request kwargs for requests.post): malformed, odd or hostile bodies, some of them usable."""
    t = np.arange(16000) / 16000
    voiced = (0.3 * sum(np.sin(2 * np.pi * 160 * k * t) / k for k in range(1, 10))).astype(np.float32)
    good_wav = base64.b64decode(_encoded(voiced, 16000, "WAV", "PCM_16"))
    features = store["table"][feature_names()].head(1).astype(float).to_dict("records")[0]
    cases: list[tuple[str, dict]] = []

    def records(what, rows):  # NaN and inf as JSON's common extension (requests refuses to send them)
        body = json.dumps({"dataframe_records": rows}, allow_nan=True)
        cases.append((what, {"data": body, "headers": {"Content-Type": "application/json"}}))

    for i in range(40):
        blob = rng.bytes(int(rng.integers(0, 4000)))
        records(f"random bytes {i}", [{"audio_base64": base64.b64encode(blob).decode()}])
        cases.append((f"random body {i}", {"data": blob, "headers": {"Content-Type": "application/json"}}))
    for _ in range(30):
        cut = int(rng.integers(1, len(good_wav)))
        records(f"truncated wav {cut}", [{"audio_base64": base64.b64encode(good_wav[:cut]).decode()}])
    for claim in (10**6, 10**8, 0xFFFFFFF0, 0):
        records(f"lying header {claim}", [{"audio_base64": base64.b64encode(lying_wav(claim)).decode()}])
    for subtype in ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"):
        records(f"wav {subtype}", [{"audio_base64": _encoded(voiced, 16000, "WAV", subtype)}])
    records("flac", [{"audio_base64": _encoded(voiced, 16000, "FLAC")}])
    records("ogg", [{"audio_base64": _encoded(voiced, 16000, "OGG", "VORBIS")}])
    for rate in (8000, 96000):
        signal = np.interp(np.arange(rate) / rate, t, voiced).astype(np.float32)
        records(f"{rate} Hz", [{"audio_base64": _encoded(signal, rate, "WAV", "PCM_16")}])
    records("stereo", [{"audio_base64": _encoded(np.stack([voiced, -voiced], 1), 16000, "WAV")}])
    silence = np.zeros((96000 * 60, 8), np.int16)  # a few KiB of FLAC that decode to 8 x 96 kHz x 60 s
    records("8 channels 96 kHz flac", [{"audio_base64": _encoded(silence, 96000, "FLAC")}])
    records("silence", [{"audio_base64": _encoded(np.zeros(16000, np.float32), 16000, "WAV")}])
    records("clipping", [{"audio_base64": _encoded(np.clip(voiced * 50, -1, 1), 16000, "WAV")}])
    records("dc offset", [{"audio_base64": _encoded(np.full(16000, 0.5, np.float32), 16000, "WAV")}])
    for value in (float("nan"), float("inf"), -float("inf"), "loud", None, True, [1, 2], {"a": 1}, 1e308, -1e308):
        records(f"feature value {value!r}", [{**features, "loudness_sma3_amean": value}])
    for value in ("", None, float("nan"), "x" * 10_000, 7, 1.5, True, [1], {"a": 1}, "\x00", "é" * 50):
        records(f"speaker {value!r:.40}", [{**features, "speaker": value}])
    records("10000 speakers", [{**features, "speaker": f"s{i}"} for i in range(10_000)])
    records("256 speakers", [{**features, "speaker": f"s{i}"} for i in range(256)])
    records("256 rows", [features] * 256)
    records("10000 rows", [features] * 10_000)
    records("300 rows", [features] * 300)
    cases.append(
        (
            "deep json",
            {
                "data": '{"dataframe_records": ' + "[" * 5000 + "]" * 5000 + "}",
                "headers": {"Content-Type": "application/json"},
            },
        )
    )
    cases.append(
        (
            "deep value",
            {
                "data": '{"dataframe_records": [{"audio_base64": ' + "[" * 3000 + "]" * 3000 + "}]}",
                "headers": {"Content-Type": "application/json"},
            },
        )
    )
    for content_type in ("text/plain", "application/xml", "image/png", "multipart/form-data", ""):
        cases.append(
            (
                f"content type {content_type!r}",
                {"data": b'{"dataframe_records": []}', "headers": {"Content-Type": content_type}},
            )
        )
    cases.append(("csv body", {"data": b"audio_base64\nnot-base64\n", "headers": {"Content-Type": "text/csv"}}))
    for what, body in (
        ("empty object", {}),
        ("null", None),
        ("list", [1, 2, 3]),
        ("split", {"dataframe_split": 1}),
        ("instances", {"instances": [[1, 2]]}),
        ("inputs", {"inputs": "x"}),
    ):
        cases.append((f"json {what}", {"json": body}))
    records("path traversal", [{"audio_path": "../../../../etc/passwd"}])
    records("absolute path", [{"audio_path": "/proc/self/environ"}])
    records("nul in path", [{"audio_path": "speech.wav\x00.txt"}])
    records("huge path", [{"audio_path": "a" * 100_000}])
    records("mixed good and bad", [features, {"audio_base64": "!!"}])
    while len(cases) < 200:
        records(f"random base64 text {len(cases)}", [{"audio_base64": base64.b64encode(rng.bytes(64)).decode()[:-1]}])
    return cases


#: Cases whose answer is known: (status, words of the reason). The others may be 200 or a 4xx.
EXPECTED = {
    "256 rows": (200, ""),
    "256 speakers": (200, ""),
    "300 rows": (400, "300 rows > 256 per request"),
    "10000 rows": (413, "request body too large"),  # this server's body cap (8 MiB) comes first
    "10000 speakers": (413, "request body too large"),
    "8 channels 96 kHz flac": (400, "too large when decoded"),
    "speaker 7": (400, "speaker must be a string"),
    "speaker True": (400, "speaker must be a string"),
    "speaker '" + "x" * 39: (400, "give an id of at most 200"),
    "speaker ''": (200, ""),
    "speaker None": (200, ""),
    "speaker nan": (200, ""),
    "wav PCM_16": (200, ""),
    "flac": (200, ""),
}


def test_hostile_requests_get_200_or_a_4xx_with_a_reason_never_a_5xx(server, store):
    cases = hostile_requests(store, np.random.default_rng(7))
    assert len(cases) >= 200 and set(EXPECTED) <= {what for what, _ in cases}
    failures = []
    for what, kwargs in cases:
        response = requests.post(f"{server}/invocations", timeout=120, **kwargs)
        status, reason = EXPECTED.get(what, (None, ""))
        if status is not None and (response.status_code != status or reason not in response.text):
            failures.append(
                f"{what}: HTTP {response.status_code}, expected {status} {reason!r}: {response.text[-300:]}"
            )
        elif response.status_code != 200 and (not 400 <= response.status_code < 500 or not response.text.strip()):
            failures.append(f"{what}: HTTP {response.status_code} {response.text[:200]}")
    assert not failures, "\n".join(failures)
    assert requests.get(f"{server}/ping", timeout=10).status_code == 200
    features = store["table"][feature_names()].head(1).astype(float).to_dict("records")
    assert ask(server, features).status_code == 200


def test_the_server_says_what_it_serves_and_warns_of_synthetic_training_data(server, store):
    log = (store["root"] / "server.log").read_text()
    assert "serving models:/crossemo-valence@champion" in log and "crossemo-valence v1: binary valence" in log
    assert "Trained on a, b, c" in log and "the SYNTHETIC demo corpora, not speech" in log
    assert f"audio_path: files under {store['root'] / 'audio'}" in log


def test_bodies_over_the_cap_get_413_declared_or_chunked(server, store):
    big = b'{"dataframe_records": [{"audio_base64": "' + b"A" * (9 * 2**20) + b'"}]}'
    response = requests.post(
        f"{server}/invocations", data=big, headers={"Content-Type": "application/json"}, timeout=60
    )
    assert response.status_code == 413 and "request body too large" in response.json()["message"]
    chunks = (big[i : i + 2**20] for i in range(0, len(big), 2**20))  # no Content-Length: chunked
    response = requests.post(
        f"{server}/invocations", data=chunks, headers={"Content-Type": "application/json"}, timeout=60
    )
    assert response.status_code == 413
    features = store["table"][feature_names()].head(1).astype(float).to_dict("records")
    assert ask(server, features).status_code == 200


def test_a_pipeline_made_with_another_feature_set_asks_for_and_extracts_that_set(tmp_path):
    from mlflow.exceptions import MlflowException

    from crossemo.experiments.normalization import Standardiser
    from crossemo.serving.pipeline import ValencePipeline
    from crossemo.serving.pyfunc import signature
    from crossemo.serving.requests import rows_to_features

    names = feature_names("emobase")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, len(names))).astype(np.float32), np.repeat(["negative", "positive"], 20)
    model = SVMValence().fit(x, y, groups=np.arange(40) % 4)
    pipeline = ValencePipeline(
        FeatureSettings(feature_set="emobase"), Standardiser(np.zeros(len(names)), np.ones(len(names))), model
    )
    assert [c.name for c in signature("emobase").inputs][3:] == names
    with pytest.raises(MlflowException, match="988 emobase columns"):  # eGeMAPS columns are not this model's
        rows_to_features(pipeline, pd.DataFrame([dict.fromkeys(feature_names()[:3], 1.0)]))
    row = pd.DataFrame([dict(zip(names, x[0].astype(float)))])
    assert np.array_equal(rows_to_features(pipeline, row), x[:1])
    audio = base64.b64encode(wav_bytes(1.0)).decode()
    assert rows_to_features(pipeline, pd.DataFrame([{"audio_base64": audio}])).shape == (1, len(names))
    assert pipeline.score(x[:2])["valence"].isin(["negative", "positive"]).all()


def test_a_request_over_64_mib_of_audio_is_refused_before_any_is_decoded():
    from mlflow.exceptions import MlflowException

    from crossemo.serving.requests import MAX_REQUEST_AUDIO_BYTES, rows_to_features

    pipeline = train_pipeline(feature_table(), SVMValence(), FeatureSettings(), refit=False).pipeline
    row = "A" * (17 * 2**20 * 4 // 3)  # 17 MiB of audio, base64: each under a file's 20 MiB, 68 in all
    assert 4 * len(row) * 3 // 4 > MAX_REQUEST_AUDIO_BYTES
    frame = pd.DataFrame({"audio_base64": [row] * 4})
    with pytest.raises(MlflowException, match="MiB of audio in one request > 64 MiB"):
        rows_to_features(pipeline, frame)


def test_a_pipeline_is_not_trained_on_tables_of_another_feature_set_than_it_would_serve():
    from crossemo.errors import ConfigError

    with pytest.raises(ConfigError, match="hold eGeMAPSv02 features but features.feature_set is emobase"):
        train_pipeline(feature_table(), SVMValence(), FeatureSettings(feature_set="emobase"))
