"""Data: reading audio and its limits, corpus loaders and the valence mapping, eGeMAPS features, the
synthetic demo corpora."""
