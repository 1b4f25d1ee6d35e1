"""Odin as users install it: the `odin` command, what the extras hold, licence and citation metadata."""

from __future__ import annotations

import ast
import re
import runpy
import subprocess
import sys
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


def test_the_library_imports_no_deployment_code():
    """``wildlife/`` (the domain, the graph, the ASL generator, the local runner) stands without the stack: outside
    its command line no module of it imports the stack's code (``modules/``), the runtimes that call it
    (``runtimes/``, ``functions/``) or CDK Terrain, so a stage runs the same locally, on Lambda and on Batch."""
    deployment = {"modules", "runtimes", "functions", "main", "cdktn", "cdktn_provider_aws", "constructs"}
    found = []
    for path in sorted((ROOT / "wildlife").rglob("*.py")):
        if "cli" in path.relative_to(ROOT / "wildlife").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in deployment]
    assert found == []


def test_the_stages_and_the_detector_catalogue_load_without_torch_or_the_stack():
    """The Lambda image has no torch and no CDK Terrain: the graph, the state machine's generator, the local
    runner, every stage and the detector catalogue (known weights, cache folder) import neither."""
    code = ("import sys, wildlife.graph, wildlife.asl, wildlife.runner, wildlife.stages, wildlife.detect.catalog\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'cdktn', 'modules', 'runtimes'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
