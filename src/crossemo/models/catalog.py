"""Models by name: params.yaml's `models:` entries name an estimator (`MODELS`) and its hyperparameters."""

from __future__ import annotations

from crossemo.errors import ConfigError
from crossemo.models.adaptation import OPTIONS, Adaptation, adapted
from crossemo.models.baselines import (
    GroupTunedSVMValence,
    SparseAutoencoderSVM,
    SVMValence,
)
from crossemo.models.estimator import ValenceModel
from crossemo.models.networks import DBNFeatureSVM, DBNValence, FeedForwardValence

#: Model names as params.yaml's `model:` uses them.
MODELS: dict[str, type[ValenceModel]] = {
    "dbn": DBNValence,
    "mlp": FeedForwardValence,
    "svm": SVMValence,
    "svm_cv": GroupTunedSVMValence,
    "sae_svm": SparseAutoencoderSVM,
    "dbn_svm": DBNFeatureSVM,
}


def make_model(name: str, **params) -> ValenceModel:
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; use one of {', '.join(MODELS)}")
    return MODELS[name](**params)


def model_from_config(configs: dict, name: str, seed: int = 0, **runtime) -> ValenceModel:
    """A fresh, unfitted model from the configuration `configs[name]` (params.yaml's models: section).
    `runtime` offers what the caller has (logger, stack_store, progress, callbacks); each model takes
    only what its class declares in RUNTIME."""
    if name not in configs:
        raise ConfigError(
            f"model configuration {name!r} is not in params.yaml's models: {', '.join(configs) or 'none'}"
        )
    spec = dict(configs[name])
    kind = spec.pop("model", name)
    adaptation = spec.pop("adaptation", Adaptation.NONE)
    options = {str(method): spec.pop(str(method)) for method in OPTIONS if str(method) in spec}
    if kind not in MODELS:
        raise ConfigError(f"models.{name}.model is {kind!r}; use one of {', '.join(MODELS)}")
    offered = {key: value for key, value in runtime.items() if key in MODELS[kind].RUNTIME}
    try:
        model = make_model(kind, seed=seed, **spec, **offered)
        return adapted(model, adaptation, options, f"models.{name}.adaptation")
    except ConfigError as error:  # a model's own check names its key; say which configuration holds it
        raise ConfigError(f"models.{name}: {error}") from None


def model_from_params(params: dict, name: str, seed: int = 0, **runtime) -> ValenceModel:
    """The same from a whole params.yaml."""
    return model_from_config(params.get("models") or {}, name, seed, **runtime)
