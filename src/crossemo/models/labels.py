"""The two valence classes, in the column order of every probability a model returns."""

import numpy as np

CLASSES = np.array(["negative", "positive"])
