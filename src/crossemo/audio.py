"""Reading one utterance, and saying exactly why a file is unusable."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from .errors import UserError


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
        data, rate = sf.read(source, dtype="float32", always_2d=True)
    except Exception as error:  # libsndfile raises several types for broken headers
        raise _corrupt(path, error) from None
    if data.shape[0] == 0:
        raise BadAudio(path, "empty: the file holds no samples")
    if channel >= data.shape[1]:
        raise BadAudio(path, f"has {data.shape[1]} channel(s), channel {channel} was asked for")
    signal = np.ascontiguousarray(data[:, channel])
    duration = len(signal) / rate
    if duration < min_duration:
        raise BadAudio(path, f"too short: {duration:.3f} s < features.min_duration {min_duration} s")
    if max_duration is not None and duration > max_duration:
        raise _too_long(path, f"{duration:.1f} s", max_duration)
    if not np.any(signal):
        raise BadAudio(path, "silent: every sample is zero")
    return Utterance(signal, int(rate))


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


def check_header(source, name, max_duration: float) -> None:
    """Refuse a file whose header claims more than max_duration seconds before decoding any of it:
    a few bytes must not make the reader allocate hours of samples."""
    if hasattr(source, "read"):
        head = source.read(4096)
        source.seek(0)
    else:
        with open(source, "rb") as file:
            head = file.read(4096)
    claimed = _wav_claimed_seconds(head)
    if claimed is not None and claimed > max_duration:
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
    if info.frames / info.samplerate > max_duration:
        raise _too_long(name, f"{info.frames / info.samplerate:.1f} s", max_duration)


def _corrupt(name, error: Exception) -> BadAudio:
    return BadAudio(name, f"corrupt or not audio ({error}); re-export it as 16-bit PCM WAV")


def _too_long(name, duration: str, max_duration: float) -> BadAudio:
    return BadAudio(name, f"too long: {duration} > {max_duration} s; split it into utterances")
