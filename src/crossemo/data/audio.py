"""Reading one utterance, and saying exactly why a file is unusable."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from crossemo.errors import UserError

#: Frames x channels a served file may decode to: a minute of stereo at 96 kHz. A small compressed
#: file (silence in FLAC) can claim far more; every channel is decoded before one is kept.
MAX_DECODED_SAMPLES = 60 * 96_000 * 2


class BadAudio(UserError, ValueError):
    """An audio file that cannot be used, with the reason a person can act on."""

    def __init__(self, path: Path | str, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class Utterance:
    signal: np.ndarray  # mono float32, shape (samples,)
    sampling_rate: int

    @property
    def duration(self) -> float:
        return len(self.signal) / self.sampling_rate


def read_utterance(
    path: Path | str | BinaryIO,
    channel: int = 0,
    min_duration: float = 0.25,
    max_duration: float | None = None,
    name: str | None = None,
) -> Utterance:
    """Read one channel of an audio file (or file-like object); raise BadAudio if it is corrupt,
    empty, too short, too long or silent. `name` says which input it was in messages.

    One channel, not the mean of all: EMOVO's two channels are different microphones and
    averaging them can cancel speech.
    """
    source = path if hasattr(path, "read") else str(path)
    path = name or path
    if max_duration is not None:
        check_header(source, path, max_duration)
    try:
        signal, rate, channels = _one_channel(source, channel)
    except Exception as error:  # libsndfile raises several types for broken headers
        raise _corrupt(path, error) from None
    if len(signal) == 0:
        raise BadAudio(path, "empty: the file holds no samples")
    if channel >= channels:
        raise BadAudio(path, f"has {channels} channel(s), channel {channel} was asked for")
    duration = len(signal) / rate
    if duration < min_duration:
        raise BadAudio(path, f"too short: {duration:.3f} s < features.min_duration {min_duration} s")
    if max_duration is not None and duration > max_duration:
        raise _too_long(path, f"{duration:.1f} s", max_duration)
    if not np.any(signal):
        raise BadAudio(path, "silent: every sample is zero")
    return Utterance(signal, int(rate))


def _one_channel(source, channel: int) -> tuple[np.ndarray, int, int]:
    """(samples of one channel, rate, channels), decoded block by block: memory holds that channel,
    not every channel of the file."""
    with sf.SoundFile(source) as file:
        if channel >= file.channels:
            return np.zeros(1, np.float32), file.samplerate, file.channels
        blocks = [b[:, channel].copy() for b in file.blocks(blocksize=1 << 16, dtype="float32", always_2d=True)]
    signal = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    return signal, file.samplerate, file.channels


def _wav_claimed_seconds(head: bytes) -> float | None:
    """The duration a RIFF/WAVE header claims for its data chunk (None if not a WAV or no claim found).
    libsndfile trusts the file's real length instead, so a header that lies is caught here."""
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
        return None
    order = "<" if head[:4] == b"RIFF" else ">"
    position, byte_rate = 12, None
    while position + 8 <= len(head):
        chunk, size = head[position : position + 4], struct.unpack(order + "I", head[position + 4 : position + 8])[0]
        if chunk == b"fmt " and position + 16 <= len(head):
            byte_rate = struct.unpack(order + "I", head[position + 16 : position + 20])[0]
        if chunk == b"data":
            return size / byte_rate if byte_rate else None
        position += 8 + size + (size & 1)
    return None


def check_header(source, name, max_duration: float | None = None, min_duration: float | None = None) -> None:
    """Refuse a file whose header claims more than max_duration seconds, less than min_duration, or
    more decoded samples than MAX_DECODED_SAMPLES, before decoding any of it: a few bytes must not
    make the reader allocate hours of samples, and a cached file is held to the same limits."""
    if hasattr(source, "read"):
        head = source.read(4096)
        source.seek(0)
    else:
        with open(source, "rb") as file:
            head = file.read(4096)
    claimed = _wav_claimed_seconds(head)
    if max_duration is not None and claimed is not None and claimed > max_duration:
        raise _too_long(name, f"its header claims {claimed:.1f} s", max_duration)
    try:
        info = sf.info(source)
    except Exception as error:  # libsndfile raises several types for broken headers
        raise _corrupt(name, error) from None
    finally:
        if hasattr(source, "seek"):
            source.seek(0)
    if info.samplerate <= 0:
        raise BadAudio(name, f"corrupt header: sampling rate {info.samplerate}")
    duration = info.frames / info.samplerate
    if max_duration is not None and duration > max_duration:
        raise _too_long(name, f"{duration:.1f} s", max_duration)
    if max_duration is not None and info.frames * info.channels > MAX_DECODED_SAMPLES:
        raise BadAudio(
            name,
            f"too large when decoded: {info.channels} channels x {info.frames} frames at {info.samplerate} Hz "
            f"> {MAX_DECODED_SAMPLES} samples; send one channel at 16 kHz",
        )
    if min_duration is not None and 0 < info.frames and duration < min_duration:
        raise BadAudio(name, f"too short: {duration:.3f} s < features.min_duration {min_duration} s")


def _corrupt(name, error: Exception) -> BadAudio:
    return BadAudio(name, f"corrupt or not audio ({error}); re-export it as 16-bit PCM WAV")


def _too_long(name, duration: str, max_duration: float) -> BadAudio:
    return BadAudio(name, f"too long: {duration} > {max_duration} s; split it into utterances")
