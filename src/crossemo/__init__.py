"""crossemo: cross-corpus and cross-language speech emotion recognition."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("crossemo")  # pyproject.toml's, as installed
except PackageNotFoundError:  # the source tree on sys.path without an install
    __version__ = "unknown"
