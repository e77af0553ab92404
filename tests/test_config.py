"""params.yaml: the paper's settings, every model configuration constructible, clear errors."""

from __future__ import annotations

import pytest

from crossemo.config import corpus_config, feature_settings, load_params
from crossemo.data.corpora import LOADERS, PAPER_VALENCE, ValenceMap
from crossemo.errors import ConfigError
from crossemo.models.catalog import model_from_params
from crossemo.models.nets import PretrainSettings
from crossemo.models.networks import DBNValence

from .conftest import REPO


@pytest.fixture(scope="module")
def params():
    return load_params(REPO / "params.yaml")


def test_params_hold_the_papers_table_1_and_dbn(params):
    assert ValenceMap.from_dict(params["valence"]) == PAPER_VALENCE
    model = model_from_params(params, "dbn_paper")
    assert isinstance(model, DBNValence) and model.hidden == (1000, 1000, 2000)
    pre, fine = model._pretrain_settings(), model._finetune_settings()
    assert (pre.learning_rate, pre.epochs) == (0.001, 500)
    finetune = params["models"]["dbn_paper"]["finetune"]
    assert (fine.learning_rate, fine.max_epochs, fine.batch_size) == (
        finetune["learning_rate"],
        finetune["max_epochs"],
        finetune["batch_size"],
    )


def test_every_model_configuration_builds(params):
    for name in params["models"]:
        assert model_from_params(params, name).get_params()


def test_iemocap_keeps_its_own_valence_row_unless_overridden(params):
    assert corpus_config(params, "iemocap").valence == LOADERS["iemocap"].valence
    assert corpus_config(params, "emodb").valence == PAPER_VALENCE
    custom = {**params, "corpora": {"emodb": {"loader": "emodb", "root": "x", "valence": {"negative": ["anger"]}}}}
    assert corpus_config(custom, "emodb").valence.positive == frozenset()


def test_unknown_names_are_explained(params):
    with pytest.raises(ConfigError, match="not in params.yaml's corpora"):
        corpus_config(params, "nope")
    with pytest.raises(ConfigError, match="model configuration 'nope'"):
        model_from_params(params, "nope")
    with pytest.raises(ValueError, match="corpora.x.loader"):
        corpus_config({"corpora": {"x": {"loader": "bogus", "root": "r"}}}, "x")
    assert feature_settings(params).sampling_rate == 16000
    demo = PretrainSettings(**params["models"]["dbn_demo"]["pretrain"])
    assert (demo.learning_rate, demo.epochs) == (
        params["models"]["dbn_demo"]["pretrain"]["learning_rate"],
        params["models"]["dbn_demo"]["pretrain"]["epochs"],
    )


def test_models_clone_as_scikit_learn_estimators_and_take_only_the_runtime_they_declare(params):
    from sklearn.base import clone

    dbn = model_from_params(params, "dbn_demo", seed=3, logger="a logger", stack_store="a store", unknown="ignored")
    assert (dbn.logger, dbn.stack_store, dbn.seed) == ("a logger", "a store", 3)
    copy = clone(dbn)
    assert copy is not dbn and copy.get_params() == dbn.get_params() and not hasattr(copy, "net_")
    svm = model_from_params(params, "svm", logger="a logger", stack_store="a store")
    assert set(svm.get_params()) == {"C", "kernel", "gamma", "seed"}
    mlp = model_from_params(params, "mlp_demo", logger="a logger", stack_store="a store")
    assert mlp.logger == "a logger" and "stack_store" not in mlp.get_params()  # no stack, so no stack cache
    assert not isinstance(mlp, DBNValence)  # the same fine-tuning, not a DBN with pretraining switched off


def test_tuning_and_registry_sections_are_typed_settings_with_overrides(params):
    from crossemo.experiments.settings import SearchSpace, tuning_settings
    from crossemo.serving.settings import registry_settings

    tuning = tuning_settings(params, n_trials=3, storage=None)
    assert tuning.n_trials == 3 and tuning.storage == params["tuning"]["storage"]
    assert isinstance(tuning.space, SearchSpace) and tuning.space.units == tuple(params["tuning"]["space"]["units"])
    registry = registry_settings(params, corpora=["savee"])
    assert (registry.model, registry.corpora, registry.seed) == (params["registry"]["model"], ("savee",), 0)
    with pytest.raises(ConfigError, match="registry: .*unexpected keyword argument 'modle'"):
        registry_settings({"registry": {"modle": "svm"}})


@pytest.mark.parametrize(
    "section, key, choices",
    [
        ("experiments", "normalization", "train, corpus, speaker"),
        ("experiments", "unlabeled", None),
        ("experiments", "executor", "local, dask"),
        ("registry", "normalization", "train, corpus, speaker"),
        ("features", "on_bad_audio", None),
        ("models.dbn_demo", "pretrain_data", "train, train+unlabeled, unlabeled"),
        ("models.dbn_demo", "finetune.precision", "32-true, bf16-mixed"),
    ],
)
def test_a_word_outside_a_fixed_vocabulary_is_refused_naming_its_key_and_choices(params, section, key, choices):
    from copy import deepcopy

    from crossemo.experiments.settings import experiment_settings
    from crossemo.serving.settings import registry_settings

    bad = deepcopy(params)
    node = bad
    for part in [*section.split("."), *key.split(".")[:-1]]:
        node = node[part]
    node[key.split(".")[-1]] = "bogus"
    build = {
        "experiments": lambda: experiment_settings(bad, "within"),
        "registry": lambda: registry_settings(bad),
        "features": lambda: feature_settings(bad),
        "models.dbn_demo": lambda: model_from_params(bad, "dbn_demo"),
    }[section]
    with pytest.raises(ConfigError) as refused:
        build()
    where = f"{section}: {key}" if section.startswith("models.") else f"{section}.{key}"  # a model's keys are its own
    assert f"{where} is 'bogus'; use one of " in str(refused.value)
    if choices:
        assert str(refused.value).endswith(f"use one of {choices}")


def test_a_models_settings_are_checked_when_it_is_built_not_when_it_first_fits(params):
    from copy import deepcopy

    bad = deepcopy(params)
    bad["models"]["dbn_demo"]["pretrain"]["epoch"] = 5  # a typo for epochs
    with pytest.raises(ConfigError, match="models.dbn_demo: pretrain: got an unexpected keyword argument 'epoch'"):
        model_from_params(bad, "dbn_demo")
    bad["models"]["mlp_demo"]["finetune"]["precision"] = "16-mixed"
    with pytest.raises(ConfigError, match="models.mlp_demo: finetune.precision is '16-mixed'"):
        model_from_params(bad, "mlp_demo")
