"""Every package the code imports is declared, and the registered model carries what it needs."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib

import pytest

from .conftest import REPO


def imported_top_levels() -> dict[str, str]:
    """{top-level module: a file importing it} for every absolute import in the package, functions included."""
    found = {}
    for path in sorted((REPO / "src" / "crossemo").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return found


def declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {normalise(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in requirements}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_third_party_import_is_declared_in_pyproject():
    distributions = importlib.metadata.packages_distributions()
    ours, missing = declared(), []
    for module, where in imported_top_levels().items():
        if module in sys.stdlib_module_names or module in ("crossemo", "__future__"):
            continue
        names = {normalise(d) for d in distributions.get(module, [])}
        if not names & ours:
            missing.append(f"{module} ({where}; distribution {sorted(names) or 'unknown'})")
    assert not missing, "imported but not declared in pyproject.toml: " + ", ".join(missing)


LOAD_WITHOUT_CHECKOUT = """
import importlib.util, sys
from pathlib import Path
sys.path = [p for p in sys.path if not (Path(p or ".") / "crossemo").is_dir()]
assert importlib.util.find_spec("crossemo") is None, "the checkout's package is still importable"
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
import crossemo
print(crossemo.__file__)
features = model.unwrap_python_model().pipeline.feature_names
print(model.predict(pd.DataFrame([dict.fromkeys(features, 0.0)]))["valence"].iloc[0])
"""


@pytest.mark.slow
def test_the_registered_model_loads_where_the_checkouts_package_is_not_importable(tmp_path, monkeypatch):
    import mlflow

    from crossemo.data.features import FeatureSettings
    from crossemo.models.baselines import SVMValence
    from crossemo.serving.fitting import train_pipeline
    from crossemo.serving.registry import register, served_requirements

    from .conftest import feature_table

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    done = register(train_pipeline(feature_table(), SVMValence(), FeatureSettings()), {}, tracking_uri=uri)
    local = mlflow.artifacts.download_artifacts(
        f"models:/crossemo-valence/{done.version}", dst_path=str(tmp_path / "m")
    )
    requirements = (tmp_path / "m" / "requirements.txt").read_text().split()
    assert set(served_requirements()) <= set(requirements) and "torch==2.13.0" in requirements
    answer = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_CHECKOUT, local], cwd=tmp_path, capture_output=True, text=True
    )
    assert answer.returncode == 0, answer.stderr[-2000:]
    package, valence = answer.stdout.split()[-2:]
    assert package.startswith(str(tmp_path / "m" / "code")) and valence in ("negative", "positive")
