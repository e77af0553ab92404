"""`crossemo predict` on many files: every input gets a row, a bad file its reason, the rest their answers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from crossemo.data.demo import write_wav
from crossemo.data.features import FeatureSettings
from crossemo.models.baselines import SVMValence
from crossemo.serving.fitting import train_pipeline
from crossemo.serving.registry import register

from .conftest import cli_status, feature_table, speaker_table, tone

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registered(tmp_path_factory) -> str:
    """A champion in a fresh store: an SVM on synthetic features (its answers are not the point here)."""
    root = tmp_path_factory.mktemp("predict-store")
    uri = f"sqlite:///{root}/mlflow.db"
    table = feature_table()
    trained = train_pipeline(table, SVMValence(), FeatureSettings(workers=1, cache_dir=str(root / "cache")))
    register(trained, {"model": "svm"}, tracking_uri=uri)
    return uri


def predict(uri: str, *args: str) -> int:
    return cli_status(["predict", "--tracking-uri", uri, "--params", "absent.yaml", *args])


@pytest.fixture
def batch(tmp_path):
    """Two good recordings and five bad ones (not audio, empty, silent, too short, too long)."""
    folder = tmp_path / "batch"
    folder.mkdir()
    tone(folder / "good1.wav", seconds=1.0, f0=150)
    tone(folder / "good2.wav", seconds=1.2, f0=220, seed=1)
    (folder / "notaudio.wav").write_text("this is a text file\n")
    write_wav(folder / "silent.wav", np.zeros((1, 16000)), 16000)
    tone(folder / "short.wav", seconds=0.1)
    write_wav(folder / "empty.wav", np.zeros((1, 0)), 16000)
    tone(folder / "long.wav", seconds=61, rate=8000)
    return folder


def test_a_mixed_batch_scores_the_good_files_and_names_what_is_wrong_with_the_others(
    registered, batch, capsys, monkeypatch
):
    monkeypatch.chdir(batch.parent)
    names = ["good1.wav", "notaudio.wav", "good2.wav", "silent.wav", "short.wav", "empty.wav", "long.wav"]
    status = predict(registered, *[f"batch/{n}" for n in names])
    out, err = capsys.readouterr()
    assert status == 1
    assert err.strip().splitlines()[-1] == "2 of 7 files scored; 5 failed"
    assert "Traceback" not in out + err
    rows = [line.split() for line in out.strip().splitlines()[1:]]
    assert [r[0] for r in rows] == [f"batch/{n}" for n in names]
    good = {r[0]: r for r in rows if r[0].startswith("batch/good")}
    for row in good.values():
        assert row[1] in {"negative", "positive"} and float(row[2]) + float(row[3]) == pytest.approx(1, abs=2e-3)
    text = {r[0]: " ".join(r[1:]) for r in rows}
    assert "corrupt or not audio" in text["batch/notaudio.wav"]
    assert "silent" in text["batch/silent.wav"]
    assert "too short" in text["batch/short.wav"]
    assert "empty" in text["batch/empty.wav"]
    assert "too long" in text["batch/long.wav"] and "61.0 s > 60.0 s" in text["batch/long.wav"]


def test_a_folder_is_searched_for_audio_and_the_rows_go_to_csv_and_json(registered, batch, tmp_path, capsys):
    for bad in ("notaudio.wav", "silent.wav", "short.wav", "empty.wav", "long.wav"):
        (batch / bad).unlink()
    (batch / "nested").mkdir()
    tone(batch / "nested" / "good3.wav", seconds=0.8, f0=180, seed=2)
    (batch / "notes.txt").write_text("not an input")
    assert predict(registered, str(batch), "--output", str(tmp_path / "answer.csv")) == 0
    assert predict(registered, str(batch), "--output", str(tmp_path / "answer.json")) == 0
    assert capsys.readouterr().err.strip().splitlines()[-1] == "3 of 3 files scored; 0 failed"
    csv = pd.read_csv(tmp_path / "answer.csv")
    records = json.loads((tmp_path / "answer.json").read_text())
    assert (
        [r["file"] for r in records]
        == list(csv["file"])
        == [str(batch / "good1.wav"), str(batch / "good2.wav"), str(batch / "nested" / "good3.wav")]
    )
    assert list(csv.columns) == [
        "file",
        "valence",
        "p_negative",
        "p_positive",
        "standardised_on",
        "model_version",
        "error",
    ]
    assert csv["error"].isna().all() and all(r["error"] is None for r in records)
    np.testing.assert_allclose([r["p_negative"] for r in records], csv["p_negative"], rtol=1e-6)
    assert set(csv["model_version"].astype(str)) == {"1"}


def test_a_glob_pattern_is_expanded_and_an_input_that_names_nothing_is_one_line(registered, batch, tmp_path, capsys):
    assert predict(registered, str(batch / "good*.wav"), "-o", str(tmp_path / "g.csv")) == 0
    assert list(pd.read_csv(tmp_path / "g.csv")["file"]) == [str(batch / "good1.wav"), str(batch / "good2.wav")]
    capsys.readouterr()
    assert predict(registered, str(tmp_path / "missing.wav")) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'missing.wav'}: no such file or folder" in err and "Traceback" not in err
    assert predict(registered, str(batch / "good1.wav"), "-o", str(tmp_path / "answer.xlsx")) == 1
    assert "give a .csv or .json file" in capsys.readouterr().err


@pytest.fixture(scope="module")
def speaker_model(tmp_path_factory) -> str:
    """A champion trained on per-speaker statistics, with a second model for lone rows."""
    root = tmp_path_factory.mktemp("predict-speakers")
    uri = f"sqlite:///{root}/mlflow.db"
    settings = FeatureSettings(workers=2, cache_dir=str(root / "cache"))
    trained = train_pipeline(speaker_table(), SVMValence(), settings, normalization="speaker", lone_rows="own_model")
    register(trained, {"model": "svm"}, tracking_uri=uri)
    return uri


def test_600_files_go_to_the_model_in_batches_and_every_one_gets_its_row(speaker_model, tmp_path, capsys):
    for i in range(600):  # three callers, 200 recordings each
        folder = tmp_path / "calls" / f"caller{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        tone(folder / f"{i:03d}.wav", seconds=0.3, f0=120 + i % 150, seed=i)
    assert predict(speaker_model, str(tmp_path / "calls"), "-o", str(tmp_path / "lone.csv")) == 0
    lone = pd.read_csv(tmp_path / "lone.csv")
    assert len(lone) == 600 and lone["valence"].notna().all() and (lone["standardised_on"] == "lone").all()
    assert capsys.readouterr().err.strip().splitlines()[-1] == "600 of 600 files scored; 0 failed"
    assert (
        predict(speaker_model, str(tmp_path / "calls"), "--speaker-from", "parent", "-o", str(tmp_path / "s.json")) == 0
    )
    grouped = pd.DataFrame(json.loads((tmp_path / "s.json").read_text()))
    assert len(grouped) == 600 and sorted(grouped["file"]) == sorted(lone["file"])
    assert (grouped["standardised_on"] == "speaker").all()
    assert grouped["speaker"].nunique() == 3 and (grouped["speaker"].value_counts() == 200).all()
    # a speaker's own statistics change the answers of the same files
    merged = grouped.merge(lone, on="file", suffixes=("", "_lone"))
    assert not np.allclose(merged["p_positive"], merged["p_positive_lone"])


def test_speakers_from_a_pattern_or_a_manifest_and_batches_that_keep_a_speaker_together(tmp_path):
    from crossemo.errors import ConfigError
    from crossemo.serving.batch_prediction import batches, speaker_rule

    assert speaker_rule(r"regex:spk(\d+)_")(tmp_path / "a" / "spk12_x.wav") == "12"
    assert speaker_rule(r"regex:spk\d+")(tmp_path / "spk7.wav") == "spk7"
    assert speaker_rule(r"regex:spk(\d+)_")(tmp_path / "other.wav") is None
    (tmp_path / "who.csv").write_text("path,speaker\naudio/u0.wav,ann\naudio/u1.wav,\n")
    by_manifest = speaker_rule(f"manifest:{tmp_path / 'who.csv'}")
    assert by_manifest(tmp_path / "audio" / "u0.wav") == "ann" and by_manifest(tmp_path / "audio" / "u1.wav") is None
    for bad in ("voice", "regex:(", f"manifest:{tmp_path / 'none.csv'}"):
        with pytest.raises(ConfigError, match="--speaker-from"):
            speaker_rule(bad)
    speakers = ["a"] * 200 + ["b"] * 100 + [None] * 300 + ["c"] * 600 + ["a"] * 10
    chunks = batches(speakers, len(speakers), cap=256)
    assert sorted(np.concatenate(chunks).tolist()) == list(range(len(speakers)))
    assert max(len(c) for c in chunks) <= 256
    for key in ("a", "b"):  # whole speakers under the cap travel in one batch
        rows = {i for i, s in enumerate(speakers) if s == key}
        assert sum(bool(rows & set(c.tolist())) for c in chunks) == 1
    c_sizes = [len(c) for c in chunks if speakers[c[0]] == "c"]
    assert c_sizes == [200, 200, 200]  # near-equal parts of a speaker over the cap
    assert [len(c) for c in batches(None, 600, cap=256)] == [256, 256, 88]
