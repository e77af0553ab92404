"""openSMILE extraction (eGeMAPS by default): bad files named, one rate for every input, one channel, per-file cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crossemo.data.audio import BadAudio, read_utterance
from crossemo.data.demo import write_wav
from crossemo.data.features import (
    FeatureCache,
    FeatureSettings,
    extract,
    extract_table,
    feature_columns,
    feature_names,
    labelled_rows,
)
from crossemo.errors import ConfigError

from .conftest import tone


def settings(tmp_path, **kw) -> FeatureSettings:
    return FeatureSettings(cache_dir=str(tmp_path / "cache"), workers=1, **kw)


def bad_files(root):
    (root / "corrupt.wav").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\n")
    write_wav(root / "empty.wav", np.zeros((1, 0)), 16000)
    tone(root / "short.wav", seconds=0.1)
    write_wav(root / "silent.wav", np.zeros((1, 16000)), 16000)
    return {
        "corrupt.wav": "corrupt or not audio",
        "empty.wav": "empty",
        "short.wav": "too short",
        "silent.wav": "silent",
    }


def test_read_utterance_names_the_reason_for_each_bad_file(tmp_path):
    for name, reason in bad_files(tmp_path).items():
        with pytest.raises(BadAudio, match=rf"{name}: {reason}"):
            read_utterance(tmp_path / name)


def test_there_are_88_egemaps_functionals():
    names = feature_names()
    assert len(names) == 88 and names[0] == "F0semitoneFrom27.5Hz_sma3nz_amean"


def test_bad_files_stop_the_run_by_name_or_are_skipped_into_a_report(tmp_path):
    reasons = bad_files(tmp_path)
    tone(tmp_path / "good.wav", seconds=1.0)
    table = pd.DataFrame({"path": ["good.wav", *reasons], "speaker": "s"})
    with pytest.raises(BadAudio) as stopped:
        extract_table(table, tmp_path, settings(tmp_path))
    for name in reasons:
        assert name in str(stopped.value)
    features, rejected = extract_table(table, tmp_path, settings(tmp_path, on_bad_audio="skip"))
    assert features["path"].tolist() == ["good.wav"] and features.shape[1] == 2 + 88
    assert dict(zip(rejected["path"], rejected["reason"].str.split(":").str[0].str.split(" ").str[0])) == {
        "corrupt.wav": "corrupt",
        "empty.wav": "empty",
        "short.wav": "too",
        "silent.wav": "silent",
    }


def test_sample_rate_and_channel_count_do_not_change_the_features(tmp_path):
    t16, t48 = np.arange(16000) / 16000, np.arange(48000) / 48000
    voice = lambda t: (
        sum(np.sin(2 * np.pi * 160 * k * t) / k for k in range(1, 20)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    )
    mono16 = 0.2 * voice(t16)
    write_wav(tmp_path / "mono16.wav", mono16[None], 16000)
    # A 48 kHz stereo copy whose second microphone is in anti-phase: a mixdown would cancel the speech.
    stereo48 = 0.2 * voice(t48)
    write_wav(tmp_path / "stereo48.wav", np.stack([stereo48, -stereo48]), 48000)
    values, bad = extract([tmp_path / "mono16.wav", tmp_path / "stereo48.wav"], settings(tmp_path))
    assert not bad
    loudness = feature_names().index("loudness_sma3_amean")
    f0 = feature_names().index("F0semitoneFrom27.5Hz_sma3nz_amean")
    assert values[1, f0] == pytest.approx(values[0, f0], abs=0.3)  # semitones
    assert values[1, loudness] == pytest.approx(values[0, loudness], rel=0.1)
    assert values[1, loudness] > 0.1  # channel 0 was taken; the mean of both channels would be silence


def test_cache_is_keyed_by_content_and_settings_and_is_read_back(tmp_path):
    path = tone(tmp_path / "a.wav", seconds=1.0)
    first, _ = extract([path], settings(tmp_path))
    cache = FeatureCache(tmp_path / "cache", settings(tmp_path).fingerprint(), 88)
    key = cache.key(path)
    assert np.array_equal(cache.get(key), first[0])
    cache.put(key, np.full(88, 7.0, dtype=np.float32))  # a warm run must read this, not recompute
    again, _ = extract([path], settings(tmp_path))
    assert (again[0] == 7.0).all()
    other = FeatureCache(tmp_path / "cache", settings(tmp_path, sampling_rate=8000).fingerprint(), 88)
    assert other.key(path) != key and other.get(other.key(path)) is None
    tone(path, seconds=1.0, f0=220)  # new content: a new key
    assert cache.key(path) != key


def test_a_warm_cache_holds_a_file_to_min_duration_as_a_cold_one_does(tmp_path):
    path = tone(tmp_path / "half.wav", seconds=0.5)
    accepted, bad = extract([path], settings(tmp_path, min_duration=0.25))
    assert not bad and np.isfinite(accepted).all()  # now cached
    for cold in (False, True):
        if cold:
            for entry in (tmp_path / "cache").rglob("*.f32"):
                entry.unlink()
        _, bad = extract([path], settings(tmp_path, min_duration=1.0))
        assert bad == {0: "too short: 0.500 s < features.min_duration 1.0 s"}


def test_one_channel_is_decoded_and_a_file_that_decodes_huge_is_refused_from_its_header(tmp_path):
    import soundfile as sf

    from crossemo.data.audio import MAX_DECODED_SAMPLES

    rate = 16000
    t = np.arange(rate) / rate
    channels = np.stack([np.sin(2 * np.pi * f * t) * 0.3 for f in (150, 300, 450)], 1).astype(np.float32)
    sf.write(tmp_path / "three.wav", channels, rate, subtype="FLOAT")
    for channel in range(3):
        assert np.array_equal(read_utterance(tmp_path / "three.wav", channel).signal, channels[:, channel])
    with pytest.raises(BadAudio, match="3 channel"):
        read_utterance(tmp_path / "three.wav", 3)
    huge = tmp_path / "huge.flac"  # silence compresses: a few KiB that decode to 8 x 96 kHz x 60 s
    sf.write(huge, np.zeros((96000 * 60, 8), np.int16), 96000, format="FLAC")
    assert huge.stat().st_size < 200_000 and 8 * 96000 * 60 > MAX_DECODED_SAMPLES
    with pytest.raises(BadAudio, match="too large when decoded: 8 channels x 5760000 frames"):
        read_utterance(huge, 0, max_duration=60.0)


def test_two_workers_give_the_same_features_as_one(tmp_path):
    paths = [tone(tmp_path / f"{i}.wav", seconds=0.8, f0=120 + 30 * i, seed=i) for i in range(4)]
    one, _ = extract(paths, FeatureSettings(cache_dir=str(tmp_path / "c1"), workers=1))
    two, _ = extract(paths, FeatureSettings(cache_dir=str(tmp_path / "c2"), workers=2))
    np.testing.assert_array_equal(one, two)


def test_settings_reject_bad_values():
    with pytest.raises(ValueError):
        FeatureSettings(on_bad_audio="ignore")
    with pytest.raises(ValueError, match="workers"):
        FeatureSettings(workers=0)


@pytest.mark.parametrize(("feature_set", "n", "first"), [("emobase", 988, "pcm_intensity_sma_max")])
def test_another_feature_set_gives_its_own_columns_and_cache_entries(tmp_path, feature_set, n, first):
    tone(tmp_path / "a.wav", seconds=1.0)
    table = pd.DataFrame({"path": ["a.wav"], "speaker": "s", "valence": "positive"})
    egemaps, _ = extract_table(table, tmp_path, settings(tmp_path))
    other, _ = extract_table(table, tmp_path, settings(tmp_path, feature_set=feature_set))
    assert other.shape[1] == 3 + n and other.columns[3] == first
    assert feature_columns(other) == feature_names(feature_set) and len(feature_columns(egemaps)) == 88
    assert labelled_rows(other)[1].shape == (1, n)
    # one cache folder serves both sets: each entry is keyed by its set, never read for the other
    assert settings(tmp_path).fingerprint() != settings(tmp_path, feature_set=feature_set).fingerprint()
    again, _ = extract_table(table, tmp_path, settings(tmp_path))
    pd.testing.assert_frame_equal(again, egemaps)


def test_an_unknown_feature_set_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match=r"features.feature_set is 'GeMAPS'; use one of eGeMAPSv02, emobase"):
        FeatureSettings(feature_set="GeMAPS")
    with pytest.raises(ConfigError, match="none of the openSMILE sets"):
        feature_columns(pd.DataFrame({"path": ["a.wav"], "speaker": ["s"]}))
