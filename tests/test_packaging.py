"""Odin as users install it: the `odin` command, what the extras hold, licence and citation metadata."""

from __future__ import annotations

import re
import runpy
import tomllib

import yaml
from conftest import ROOT

import wildlife
from wildlife.cli.main import cli

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DEV_ONLY = ("pytest", "ruff", "moto", "hypothesis", "hadolint", "zizmor", "duckdb", "pillow")


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[=<>~ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_odin_command_is_the_app_scripts_run_py_runs():
    assert PYPROJECT["project"]["scripts"]["odin"] == "wildlife.cli.main:cli"
    assert runpy.run_path(str(ROOT / "scripts" / "run.py"))["cli"] is cli


def test_what_a_user_installs_holds_no_development_tools():
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    for user_set in (project["dependencies"], extras["detect"], extras["aws"], extras["onnx"]):
        assert not any(name.startswith(DEV_ONLY) for name in _names(user_set)), user_set
    assert {"torch", "onnx", "onnxruntime"} <= _names(extras["detect"])
    assert "cdktn" in _names(extras["aws"])
    assert "odin-wildlife[detect,aws]" in extras["dev"]  # developers get everything a user can have
    assert _names(extras["dev"]) >= {"pytest", "ruff", "moto"}


def test_licence_and_citation_agree_with_the_package():
    project = PYPROJECT["project"]
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "the Odin authors" in licence
    assert project["license"] == {"text": "MIT"}
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0"
    assert citation["version"] == project["version"] == wildlife.__version__
    assert citation["license"] == "MIT"
