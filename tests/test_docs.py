"""The documentation: every params key documented, the CLI reference complete, the site as a reader sees it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from crossemo.reference import cli_markdown, documented, params_markdown, params_rows

from .conftest import REPO


def keys(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if (
            isinstance(value, dict)
            and value
            and key not in ("options", "emotions", "valence")
            or (isinstance(value, dict) and value and prefix == "")
        ):
            yield from keys(value, path)
        else:
            yield path


@pytest.mark.parametrize("name", ["params.yaml", "params.real.yaml"])
def test_every_key_of_the_params_files_is_in_the_reference(name):
    params = yaml.safe_load((REPO / name).read_text())
    missing = [key for key in keys(params) if not documented(key)]
    assert not missing, f"{name}: keys missing from the params reference (crossemo.reference): {missing}"


def test_an_undocumented_key_is_caught_and_enum_keys_name_their_choices():
    assert not documented("experiments.workrs") and not documented("registry.lone_row")
    assert documented("models.dbn_best.finetune.dropout") and documented("experiments.transfer.target_audio")
    rows = {row[0]: row for row in params_rows()}
    assert rows["registry.lone_rows"][3] == "pooled, own_model" and rows["registry.lone_rows"][4]
    assert rows["features.feature_set"][3] == "eGeMAPSv02, emobase, ComParE_2016"
    assert all(row[4] for row in params_rows()), "every key says what it means"
    assert "| `registry.refit` | bool | `True` |" in params_markdown()


def test_the_cli_reference_holds_every_command():
    text = cli_markdown()
    for command in ("register", "serve", "predict", "evaluate", "tune", "corpora import", "params use"):
        assert f"## `crossemo {command}`" in text
    assert "--speaker-from" in text and "--no-page" in text and "--as-served" in text


CHROMIUM = shutil.which("chromium")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_built_site_shows_its_title_and_navigation_in_a_browser(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    mkdocs = Path(sys.executable).parent / "mkdocs"
    subprocess.run([str(mkdocs), "build", "--strict", "--quiet", "-d", str(site)], cwd=REPO, env=env, check=True)
    shots = Path(os.environ.get("CROSSEMO_TEST_ARTIFACTS", REPO / ".cache"))
    shots.mkdir(parents=True, exist_ok=True)
    for page, shot in (("index.html", "site-home.png"), ("tutorials/tuning/index.html", "site-tutorial.png")):
        url = (site / page).as_uri()
        common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
        common += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
        common += [f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,900"]
        dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
        assert "<title>" in dom and "crossemo" in dom
        for section in ("Getting started", "Tutorials", "Concepts", "Reference", "Results", "Research log"):
            assert section in dom, f"{page}: navigation lacks {section}"
        subprocess.run([*common, f"--screenshot={shots / shot}", url], capture_output=True, timeout=120)
        assert (shots / shot).stat().st_size > 10_000
