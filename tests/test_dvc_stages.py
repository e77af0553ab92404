"""dvc.yaml and dvc.lock tell the truth about the code: every module a stage runs is one of its
dependencies, and the committed lock records the code as it is (so `make demo` leaves git clean)."""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

import pytest
import yaml

from .conftest import REPO

PACKAGE = REPO / "src" / "crossemo"


def module_file(name: str) -> Path | None:
    """crossemo.a.b -> its .py file (a package's __init__.py); None outside the package."""
    parts = name.split(".")
    if parts[0] != "crossemo":
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(file: Path) -> str:
    relative = file.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(file: Path) -> set[str]:
    """Every crossemo module this file imports, at module level or inside functions."""
    package = module_name(file) if file.name == "__init__.py" else module_name(file).rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}  # `from . import x` may name a module
    return {name for name in found if module_file(name)}


def closure(start: str) -> set[Path]:
    """The files Python runs for `python -m start`: its imports, theirs, and every parent package."""
    seen: set[Path] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ first
            file = module_file(".".join(parts[:i]))
            if file and file not in seen:
                seen.add(file)
                todo += sorted(imported_modules(file))
    return seen


def stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", ["table", "features", "experiment", "report"])
def test_every_module_a_stage_runs_is_one_of_its_dependencies(stage):
    definition = stages()[stage]
    definition = definition.get("do", definition)
    command = definition["cmd"].split()
    assert command[:3] == ["python", "-m", f"crossemo.stages.{stage}"], definition["cmd"]
    deps = [REPO / d for d in definition["deps"] if d.startswith("src/")]
    runs = closure(f"crossemo.stages.{stage}")
    missing = sorted(str(f.relative_to(REPO)) for f in runs if not any(f == d or d in f.parents for d in deps))
    assert not missing, f"dvc.yaml stage {stage} runs these modules without listing them: {missing}"


def test_the_derivation_follows_imports_inside_functions():
    runs = {f.relative_to(PACKAGE).as_posix() for f in closure("crossemo.stages.experiment")}
    assert {
        "experiments/runner.py",
        "models/networks.py",
        "models/nets.py",
        "models/training.py",
        "models/rbm.py",
        "models/baselines.py",
        "experiments/report.py",
        "stages/__init__.py",
        "__init__.py",
    } <= runs
    assert "cli.py" not in runs and not any(path.startswith("serving/") for path in runs)


def dvc_md5(path: Path) -> str:
    """DVC 3's hash of a file (md5 of its bytes) or folder (md5 of its sorted listing, `.dir`)."""
    if path.is_file():
        return hashlib.md5(path.read_bytes()).hexdigest()
    entries = [
        {"md5": dvc_md5(p), "relpath": p.relative_to(path).as_posix()}
        for p in sorted(path.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    ]
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"


def test_the_committed_lock_records_the_code_as_it_is():
    """A stale lock makes `dvc repro` rerun stages on a fresh clone and `make demo` leave git dirty:
    after changing a stage's code, rerun the demo pipeline and commit dvc.lock."""
    lock = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]
    stale = []
    for stage, entry in lock.items():
        for dep in entry.get("deps", []):
            path = REPO / dep["path"]
            if dep["path"].startswith("src/") and (not path.exists() or dep.get("md5") != dvc_md5(path)):
                stale.append(f"{stage}: {dep['path']}")
    assert not stale, (
        "dvc.lock records other code than the checkout's; rerun `make demo` and commit dvc.lock:\n" + "\n".join(stale)
    )


def test_the_scenarios_are_named_once():
    from crossemo.experiments.settings import Scenario

    assert stages()["experiment"]["foreach"] == [s.value for s in Scenario]
    params = yaml.safe_load((REPO / "params.yaml").read_text())["experiments"]
    assert {s.value for s in Scenario} <= set(params)  # each has its own (possibly empty) section
