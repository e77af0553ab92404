"""The pipeline as an MLflow pyfunc model, and its signature."""

from __future__ import annotations

import mlflow
import pandas as pd

from crossemo.data.features import FeatureSet, feature_names
from crossemo.serving.requests import AUDIO_COLUMNS, SPEAKER_COLUMN, request_speakers, rows_to_features


class ValencePyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import joblib

        self.pipeline = joblib.load(context.artifacts["pipeline"])
        # The registry assigns the version after the model is logged: loaders pass it in (crossemo serve,
        # predict and evaluate; MLflow's own server through MLFLOW's serving model config).
        self.version = str((context.model_config or {}).get("model_version", "unregistered"))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        features = rows_to_features(self.pipeline, frame)
        answer = self.pipeline.score(features, request_speakers(frame))
        answer["model_version"] = self.version
        return answer


def signature(feature_set: FeatureSet = FeatureSet.EGEMAPS):
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    inputs = [ColSpec("string", c, required=False) for c in (*AUDIO_COLUMNS, SPEAKER_COLUMN)]
    inputs += [ColSpec("double", c, required=False) for c in feature_names(feature_set)]
    outputs = [
        ColSpec("string", "valence"),
        ColSpec("double", "p_negative"),
        ColSpec("double", "p_positive"),
        ColSpec("string", "standardised_on"),
        ColSpec("string", "model_version"),
    ]
    return ModelSignature(Schema(inputs), Schema(outputs))
