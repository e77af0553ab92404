"""The errors a user can fix. The CLI prints these as one line; anything else is a bug and keeps its traceback."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

Vocabulary = TypeVar("Vocabulary", bound=StrEnum)


class UserError(Exception):
    """A mistake in the input, the data or the settings, stated so the user can act on it."""


class ConfigError(UserError, ValueError):
    """A params.yaml value (or command-line option) that cannot work; the message names the key."""


def choice(vocabulary: type[Vocabulary], value: str, key: str) -> Vocabulary:
    """`value` as a member of a fixed vocabulary, or a ConfigError naming the params.yaml key and
    every choice (an Enum's own ValueError names neither)."""
    if value not in set(vocabulary):
        raise ConfigError(f"{key} is {value!r}; use one of {', '.join(vocabulary)}")
    return vocabulary(value)
