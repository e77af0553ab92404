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


def settings_from(cls, section: str, values: dict):
    """A settings dataclass from a params.yaml section; an unknown key or value names the section."""
    try:
        return cls(**values)
    except TypeError as error:  # an unknown key: a typo in params.yaml
        raise ConfigError(f"{section}: {error}".replace(f"{cls.__name__}.__init__() ", "")) from None
    except ValueError as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"{section}: {error}") from None  # a value a dataclass rejects without naming its key
