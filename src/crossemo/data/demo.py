"""The embedded default: small synthetic speech-like corpora, deterministic from a seed.

They mirror the paper's set-up (five corpora in their native layouts, three "languages", adult
and child voices, different recording conditions) so the whole pipeline runs on a fresh clone.
They are SYNTHETIC: useful to try the pipeline, meaningless as emotion-recognition results.

Each utterance is a syllable string: a sawtooth glottal source following an F0 contour,
shaped by a spectral tilt and by the formants of the language's vowels, with noise bursts
for consonants and an energy envelope. Emotions move F0 level and range, speaking rate,
loudness, tilt, jitter and (for positive valence) a slight formant raise, the "smile", by
amounts that each corpus scales a little differently: transfer is possible and imperfect.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# (F0 shift in semitones, F0 range factor, rate factor, loudness dB, tilt change, jitter, smile)
PROFILES = {
    "neutral": (0.0, 1.0, 1.0, 0.0, 0.0, 0.005, 0.00),
    "calm": (-1.0, 0.8, 0.9, -2.0, -0.1, 0.004, 0.02),
    "happiness": (4.0, 1.8, 1.1, 3.0, 0.15, 0.006, 0.06),
    "excitement": (5.0, 1.9, 1.15, 4.0, 0.2, 0.007, 0.06),
    "surprise": (6.0, 2.0, 1.0, 3.0, 0.1, 0.006, 0.05),
    "anger": (4.0, 1.5, 1.15, 6.0, 0.3, 0.02, -0.02),
    "emphatic": (2.0, 1.3, 0.9, 4.0, 0.2, 0.015, -0.01),
    "sadness": (-2.0, 0.6, 0.75, -5.0, -0.3, 0.015, -0.03),
    "boredom": (-1.5, 0.5, 0.8, -3.0, -0.2, 0.012, -0.02),
    "fear": (5.0, 0.8, 1.25, 1.0, 0.0, 0.03, -0.02),
    "disgust": (-1.0, 0.9, 0.85, 1.0, 0.1, 0.02, -0.04),
    "frustration": (1.0, 1.1, 1.0, 2.0, 0.1, 0.015, -0.02),
}

# Vowel (F1, F2) inventories and rhythm: mean syllable length (s) and its spread.
LANGUAGES = {
    "german": dict(
        vowels=[(750, 1300), (400, 2100), (280, 2250), (420, 800), (300, 750), (400, 1500), (280, 1650)],
        syllable=0.19,
        spread=0.35,
        fricative=4500,
    ),
    "english": dict(
        vowels=[(700, 1200), (550, 1800), (300, 2300), (500, 900), (320, 900), (500, 1500)],
        syllable=0.17,
        spread=0.3,
        fricative=5000,
    ),
    "italian": dict(
        vowels=[(800, 1250), (450, 2000), (300, 2300), (450, 850), (320, 750)],
        syllable=0.15,
        spread=0.12,
        fricative=3800,
    ),
}
REFERENCE_POWER = 0.05  # about the power of neutral synthetic speech before the recording gain
VOICES = {"male": (115.0, 1.0), "female": (205.0, 1.15), "child": (280.0, 1.3)}  # F0 Hz, formant scale


@dataclass(frozen=True)
class Recording:
    """A corpus' recording conditions."""

    rate: int = 16000
    snr_db: float = 30.0
    band: tuple[float, float] = (60.0, 7800.0)
    level_db: float = -12.0
    channels: int = 1


@dataclass(frozen=True)
class Speaker:
    id: str
    voice: str  # key of VOICES
    f0: float
    formant_scale: float


def _speakers(rng: np.random.Generator, ids_and_voices: list[tuple[str, str]]) -> list[Speaker]:
    out = []
    for sid, voice in ids_and_voices:
        f0, scale = VOICES[voice]
        out.append(Speaker(sid, voice, f0 * rng.uniform(0.85, 1.15), scale * rng.uniform(0.95, 1.05)))
    return out


def synthesize(
    rng: np.random.Generator, language: str, speaker: Speaker, emotion: str, effect: np.ndarray, recording: Recording
) -> np.ndarray:
    """One utterance as float64 samples in [-1, 1] (channels, samples)."""
    lang, sr = LANGUAGES[language], recording.rate
    shift, f0_range, rate, loud, tilt, jitter, smile = np.array(PROFILES[emotion]) * effect
    rate = max(rate, 0.4)
    n_syll = int(rng.integers(5, 11))
    lengths = lang["syllable"] / rate * np.exp(rng.normal(0, lang["spread"], n_syll))
    bounds = np.concatenate([[0], np.cumsum((lengths * sr).astype(int))])
    n = bounds[-1] + int(0.1 * sr)
    t = np.arange(n) / sr
    # F0: declination, a random accent per syllable, scaled by the emotion's level and range.
    base = speaker.f0 * 2 ** (shift / 12)
    accents = rng.normal(0, 1.5, n_syll + 1) * f0_range
    contour = np.interp(t, np.linspace(0, t[-1], n_syll + 1), accents) - 1.5 * f0_range * t / t[-1]
    f0 = base * 2 ** (contour / 12) * (1 + jitter * rng.standard_normal(n))
    phase = np.cumsum(f0 / sr) % 1.0
    source = 1.0 - 2.0 * phase
    out = np.zeros(n)
    n_fft = _fft_size(int(lengths.max() * sr))
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    for i in range(n_syll):
        a, b = bounds[i], bounds[i + 1]
        f1, f2 = lang["vowels"][rng.integers(len(lang["vowels"]))]
        formants = np.array([f1, f2, 2600.0]) * speaker.formant_scale * (1 + smile)
        seg = source[a:b] * np.hanning(b - a) ** 0.5
        spectrum = np.fft.rfft(seg, n_fft)
        gain = sum(1 / (1 + ((freqs - f) / (60 + 0.06 * f)) ** 2) for f in formants)
        gain *= (1 + freqs / 500.0) ** (-1.2 + tilt)  # spectral tilt: flatter when aroused
        vowel = np.fft.irfft(spectrum * gain, n_fft)[: b - a]
        burst = int(0.25 * (b - a))  # a consonant: shaped noise at the syllable's onset
        noise = rng.standard_normal(burst) * np.hanning(burst)
        high_pass = np.fft.rfftfreq(n_fft, 1 / sr) > lang["fricative"] * 0.5
        noise = np.fft.irfft(np.fft.rfft(noise, n_fft) * high_pass, n_fft)
        out[a:b] += vowel / (np.abs(vowel).max() + 1e-9)
        out[a : a + burst] += 0.15 * noise[:burst]
    out *= 10 ** (loud / 20)
    return _record(rng, out, recording)


def _fft_size(n: int) -> int:
    """The next power of two: numpy's FFT is many times slower on awkward lengths."""
    return 1 << int(np.ceil(np.log2(max(n, 2))))


def _record(rng: np.random.Generator, speech: np.ndarray, recording: Recording) -> np.ndarray:
    """Band limits, a noise floor and a fixed gain; a second, different microphone if stereo.

    Gain and noise are the corpus' own, not the utterance's: normalising each file to its peak
    would erase the loudness that emotions change.
    """
    low, high = recording.band
    n_fft = _fft_size(len(speech))
    freqs = np.fft.rfftfreq(n_fft, 1 / recording.rate)
    speech = np.fft.irfft(np.fft.rfft(speech, n_fft) * ((freqs >= low) & (freqs <= high)), n_fft)[: len(speech)]
    floor = np.sqrt(REFERENCE_POWER / 10 ** (recording.snr_db / 10))
    channels = [speech + rng.standard_normal(len(speech)) * floor]
    if recording.channels == 2:  # EMOVO-like: an anti-correlated second microphone
        channels.append(-0.3 * speech + rng.standard_normal(len(speech)) * np.sqrt(REFERENCE_POWER) * 0.5)
    return np.clip(np.stack(channels) * 10 ** (recording.level_db / 20), -1, 1)


def write_wav(path: Path, signal: np.ndarray, rate: int) -> None:
    """16-bit PCM through the standard library: the same samples give the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.round(signal.T * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(signal.shape[0])
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())


class DemoCorpus:
    """One synthetic corpus: which speakers say which emotions, and where the files go."""

    language = "german"
    recording = Recording()

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        # Each corpus scales the emotion effects its own way: consistent, not identical.
        self.effect = rng.uniform(0.6, 1.2, size=7)

    def utterances(self) -> list[tuple[Speaker, str, Path, str]]:
        """(speaker, emotion, relative path, label written to the corpus' own label file)."""
        raise NotImplementedError

    def write(self, root: Path) -> int:
        items = self.utterances()
        for speaker, emotion, rel, _ in items:
            write_wav(
                root / rel,
                synthesize(self.rng, self.language, speaker, emotion, self.effect, self.recording),
                self.recording.rate,
            )
        self.write_labels(root, items)
        return len(items)

    def write_labels(self, root: Path, items) -> None:
        """Corpora whose labels are in the file names write nothing more."""


class EmoDB(DemoCorpus):
    language = "german"
    recording = Recording(rate=16000, snr_db=35, band=(60, 7800), level_db=-10)
    letters = {
        "anger": "W",
        "boredom": "L",
        "disgust": "E",
        "fear": "A",
        "happiness": "F",
        "sadness": "T",
        "neutral": "N",
    }

    def utterances(self):
        ids = [("03", "male"), ("08", "female"), ("09", "female"), ("10", "male"), ("11", "male"), ("13", "female")]
        items = []
        for spk in _speakers(self.rng, [(s, v) for s, v in ids]):
            for text in range(4):
                for emotion, letter in self.letters.items():
                    if self.rng.random() < 0.75:
                        items.append((spk, emotion, Path(f"wav/{spk.id}a{text:02d}{letter}a.wav"), letter))
        return items


class Savee(DemoCorpus):
    language = "english"
    recording = Recording(rate=44100, snr_db=28, band=(80, 10000), level_db=-10)
    codes = {
        "anger": "a",
        "disgust": "d",
        "fear": "f",
        "happiness": "h",
        "neutral": "n",
        "sadness": "sa",
        "surprise": "su",
    }

    def utterances(self):
        items = []
        for spk in _speakers(self.rng, [(s, "male") for s in ("DC", "JE", "JK", "KL")]):
            for emotion, code in self.codes.items():
                for k in range(6 if emotion == "neutral" else 3):
                    items.append((spk, emotion, Path(f"{spk.id}_{code}{k + 1:02d}.wav"), code))
        return items


class Emovo(DemoCorpus):
    language = "italian"
    recording = Recording(rate=48000, snr_db=25, band=(70, 12000), level_db=-14, channels=2)
    codes = {
        "disgust": "dis",
        "happiness": "gio",
        "neutral": "neu",
        "fear": "pau",
        "anger": "rab",
        "surprise": "sor",
        "sadness": "tri",
    }

    def utterances(self):
        ids = [("f1", "female"), ("f2", "female"), ("f3", "female"), ("m1", "male"), ("m2", "male"), ("m3", "male")]
        items = []
        for spk in _speakers(self.rng, ids):
            for emotion, code in self.codes.items():
                for sentence in ("b1", "l1", "n1"):
                    items.append((spk, emotion, Path(f"{spk.id}/{code}-{spk.id}-{sentence}.wav"), code))
        return items


class Iemocap(DemoCorpus):
    language = "english"
    recording = Recording(rate=16000, snr_db=18, band=(80, 7500), level_db=-18)
    codes = {
        "neutral": "neu",
        "happiness": "hap",
        "excitement": "exc",
        "sadness": "sad",
        "anger": "ang",
        "frustration": "fru",
    }

    def utterances(self):
        items = []
        for session in range(1, 6):
            speakers = _speakers(self.rng, [(f"Ses{session:02d}F", "female"), (f"Ses{session:02d}M", "male")])
            dialog = f"Ses{session:02d}F_impro01"
            for spk in speakers:
                for k in range(20):
                    emotion = list(self.codes)[self.rng.integers(len(self.codes))]
                    utt = f"{dialog}_{spk.id[-1]}{k:03d}"
                    items.append(
                        (spk, emotion, Path(f"Session{session}/sentences/wav/{dialog}/{utt}.wav"), self.codes[emotion])
                    )
        return items

    def write_labels(self, root, items):
        by_session: dict[int, list[str]] = {}
        for i, (_, _, rel, code) in enumerate(items):
            session = int(rel.parts[0][-1])
            by_session.setdefault(session, []).append(
                f"[{i:.4f} - {i + 1:.4f}]\t{rel.stem}\t{code}\t[2.5000, 2.5000, 2.5000]\nC-E1:\tX;\t()\n"
            )
        for session, blocks in by_session.items():
            label = root / f"Session{session}/dialog/EmoEvaluation/Ses{session:02d}F_impro01.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n" + "\n".join(blocks))


class Aibo(DemoCorpus):
    language = "german"
    recording = Recording(rate=16000, snr_db=15, band=(100, 7000), level_db=-20)

    def utterances(self):
        items = []
        for school in ("Ohm", "Mont"):
            for spk in _speakers(self.rng, [(f"{school}_{c:02d}", "child") for c in range(1, 6)]):
                for turn in range(24):
                    negative = self.rng.random() < 0.35  # NEG is the minority, as in the real corpus
                    emotion = self.rng.choice(
                        ["anger", "emphatic"] if negative else ["neutral", "neutral", "happiness"]
                    )
                    chunk = f"{spk.id}_{turn:03d}_00"
                    items.append((spk, str(emotion), Path(f"wav/{chunk}.wav"), "NEG" if negative else "IDL"))
        return items

    def write_labels(self, root, items):
        label = root / "labels/IS2009EmotionChallenge/chunk_labels_2cl_corpus.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("".join(f"{rel.stem} {code} 1.0\n" for _, _, rel, code in items))


#: name -> generator class; names match the loaders that read them.
DEMO_CORPORA: dict[str, type[DemoCorpus]] = {
    "aibo": Aibo,
    "iemocap": Iemocap,
    "emodb": EmoDB,
    "savee": Savee,
    "emovo": Emovo,
}


#: Written beside the demo corpora: a model trained on them says so wherever it is served.
SYNTHETIC_MARKER = "SYNTHETIC.md"


def generate(directory: str | Path, seed: int = 2018, names: list[str] | None = None) -> dict[str, int]:
    """Write the demo corpora under directory/<name>/; the same seed gives byte-identical files."""
    counts = {}
    for offset, name in enumerate(names or DEMO_CORPORA):
        rng = np.random.default_rng([seed, offset])
        counts[name] = DEMO_CORPORA[name](rng).write(Path(directory) / name)
    (Path(directory) / SYNTHETIC_MARKER).write_text(
        "# SYNTHETIC demo corpora\n\nWritten by `crossemo demo generate` to try the pipeline. They are not speech:\n"
        "models trained on them say nothing about emotion in real recordings.\n"
    )
    return counts


def is_synthetic(root: str | Path) -> bool:
    """Whether a corpus folder lies in a tree written by `generate` (the marker in it or above it)."""
    root = Path(root).resolve()
    return any((folder / SYNTHETIC_MARKER).is_file() for folder in (root, *root.parents))
