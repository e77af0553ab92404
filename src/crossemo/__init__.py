"""crossemo: cross-corpus and cross-language speech emotion recognition."""

__version__ = "0.1.0"
