"""The errors a user can fix. The CLI prints these as one line; anything else is a bug and keeps its traceback."""


class UserError(Exception):
    """A mistake in the input, the data or the settings, stated so the user can act on it."""


class ConfigError(UserError, ValueError):
    """A params.yaml value (or command-line option) that cannot work; the message names the key."""
