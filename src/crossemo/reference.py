"""The documentation's reference pages, generated from the code so that they cannot drift: every
params.yaml key (from the typed settings: type, default, allowed values, and the comment beside the
field as its meaning) and every command of the CLI (from its argparse parser)."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import re
from collections.abc import Iterator

from crossemo.data.features import FeatureSettings
from crossemo.experiments.settings import ExperimentSettings, Scenario, SearchSpace, TuneSettings
from crossemo.models.adaptation import OPTIONS, Adaptation
from crossemo.models.catalog import MODELS
from crossemo.models.nets import FinetuneSettings, PretrainSettings
from crossemo.serving.settings import RegistrySettings

#: Keys read by functions rather than settings fields: (key, type, default, meaning).
CORPUS_KEYS = [
    (
        "loader",
        "str",
        "the corpus' name",
        "the loader that reads its native layout: "
        + ", ".join(["emodb", "savee", "emovo", "urdu", "iemocap", "aibo", "ravdess", "tess", "cremad", "manifest"]),
    ),
    ("root", "path", "required", "the corpus folder (or, for manifest, the CSV file or a folder holding manifest.csv)"),
    (
        "valence",
        "{negative: [...], positive: [...]}",
        "the loader's, else the top-level valence",
        "this corpus' valence mapping of canonical emotions",
    ),
    ("options", "mapping", "{}", "loader options (aibo: labels: 2cl or 5cl)"),
    ("emotions", "mapping", "{}", "a manifest's own emotion words -> canonical emotions"),
    ("test_only", "bool", "false", "only ever tested on: never a label in training, tuning or registration"),
]
VALENCE_KEYS = [
    ("negative", "list of emotions", "anger, sadness, fear, disgust, boredom", "emotions labelled negative"),
    ("positive", "list of emotions", "neutral, happiness, surprise, calm", "emotions labelled positive"),
]
NOT_PARAMS = {"test_only"}  # ExperimentSettings' fields filled from corpora:, not read from experiments:


def field_comments(cls) -> dict[str, str]:
    """{field: the comment beside it, or the comment lines just above it} in the class' source."""
    comments, above = {}, []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("#: ").strip())
            continue
        match = re.match(r"\s+(\w+):[^=#]*(?:=[^#]*)?(?:#\s*(.*))?$", line)
        if match and not stripped.startswith(("def ", "return", "if ", "raise", "object.")):
            comments[match.group(1)] = match.group(2) or " ".join(above)
        above = []
    return comments


def _choices(annotation: str, module) -> str:
    for name in re.findall(r"\w+", annotation):
        kind = getattr(module, name, None)
        if inspect.isclass(kind) and issubclass(kind, enum.Enum):
            return ", ".join(str(member.value) for member in kind)
    return ""


def _default(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
        if dataclasses.is_dataclass(value):
            return "(a section)"
    else:
        return "required"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, tuple):
        value = list(value)
    return "null" if value is None else str(value)


def settings_rows(prefix: str, cls, skip=()) -> Iterator[tuple[str, str, str, str, str]]:
    """(key, type, default, allowed values, meaning) for each field of a settings dataclass."""
    module = inspect.getmodule(cls)
    comments = field_comments(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        annotation = str(field.type)
        yield (
            f"{prefix}.{field.name}",
            annotation,
            _default(field),
            _choices(annotation, module),
            comments.get(field.name, ""),
        )


def model_rows() -> Iterator[tuple[str, str, str, str, str]]:
    """The hyperparameters of every estimator, as `models.<name>.<key>`."""
    yield "models.<name>.model", "str", "the entry's name", ", ".join(MODELS), "the estimator this entry configures"
    yield (
        "models.<name>.adaptation",
        "Adaptation",
        "none",
        ", ".join(Adaptation),
        "what the model does with the target's unlabeled rows (crossemo.models.adaptation): coral re-colours the "
        "training rows with their covariance (every model); dann fine-tunes against a domain classifier (dbn, "
        "mlp); self_training refits with its surest target rows, pseudo-labelled (every model). The rows are the "
        "fit's unlabeled ones: experiments.unlabeled: target, transfer's target_audio: used, or --adapt CORPUS",
    )
    seen = {}
    for kind, cls in MODELS.items():
        for name, parameter in inspect.signature(cls.__init__).parameters.items():
            if name in ("self", "seed") or name in cls.RUNTIME:
                continue
            default = parameter.default
            shown = "null" if default is None else str(list(default) if isinstance(default, tuple) else default)
            seen.setdefault(name, [shown, set()])[1].add(kind)
    for name, (default, kinds) in sorted(seen.items()):
        if name in ("pretrain", "finetune", *OPTIONS):
            continue
        yield f"models.<name>.{name}", "", default, "", "of " + ", ".join(sorted(kinds))
    yield from settings_rows("models.<name>.pretrain", PretrainSettings)
    yield from settings_rows("models.<name>.finetune", FinetuneSettings)
    for method, settings in OPTIONS.items():  # each method's options, read only with its adaptation
        yield from settings_rows(f"models.<name>.{method}", settings)


def params_rows() -> list[tuple[str, str, str, str, str]]:
    rows = [(f"valence.{k}", t, d, "", m) for k, t, d, m in VALENCE_KEYS]
    rows += [(f"corpora.<name>.{k}", t, d, "", m) for k, t, d, m in CORPUS_KEYS]
    rows += list(settings_rows("features", FeatureSettings))
    rows += list(model_rows())
    rows += list(settings_rows("experiments", ExperimentSettings, skip=NOT_PARAMS))
    scenarios = ", ".join(s.value for s in Scenario)
    rows.append(("experiments.<scenario>", "section", "{}", scenarios, "the scenario's own values of the keys above"))
    rows += list(settings_rows("tuning", TuneSettings, skip={"space"}))
    rows += list(settings_rows("tuning.space", SearchSpace))
    rows += list(settings_rows("registry", RegistrySettings))
    return rows


def documented(key: str) -> bool:
    """Whether a dotted params key (corpus, model and scenario names as written) is in the reference."""
    keys = {row[0] for row in params_rows()}
    parts = key.split(".")
    if parts[0] in ("corpora", "models") and len(parts) > 2:
        parts[1] = "<name>"
    if parts[0] == "experiments" and len(parts) > 1 and parts[1] in {s.value for s in Scenario}:
        if len(parts) == 2:
            return True  # the scenario's own section (see experiments.<scenario>)
        del parts[1]  # a scenario's own section takes the shared keys
    candidate = ".".join(parts)
    return candidate in keys or any(candidate.startswith(k + ".") for k in keys)


def params_markdown() -> str:
    lines = ["| key | type | default | allowed values | meaning |", "|---|---|---|---|---|"]
    for key, kind, default, choices, meaning in params_rows():
        cells = [f"`{key}`", kind.replace("|", "\\|"), f"`{default}`", choices, meaning.replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cli_markdown() -> str:
    """Every command's --help, from the parser `crossemo` runs."""
    import argparse

    from crossemo.cli import build_parser

    out = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        out.append(f"## `{name}`\n\n```text\n{parser.format_help().strip()}\n```\n")
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, child in action.choices.items():
                    walk(child, f"{name} {sub}")

    walk(build_parser(), "crossemo")
    return "\n".join(out)
