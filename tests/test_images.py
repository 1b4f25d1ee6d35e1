"""Each container image's environment, made the way its Dockerfile makes it, runs that image's entry point.

Per Dockerfile (its final stage): a virtual environment of the same Python minor version, the files its COPY
lines take from the build context at its WORKDIR, and exactly its `pip install` commands; then its entry point
runs there, with nothing of the development environment in reach. A dependency the image lacks fails here.

- functions: every Lambda handler in state-machine order against S3 (moto server), the array job between them
  played by the detector-cpu image's entry point; the failure report on the Catch path; and `odin run` as a
  user who did `pip install .` runs it.
- detector-cpu (onnxruntime only): the Batch entry point over a shard with an ONNX model.
- detector (PyTorch): the Batch entry point over a shard with a checkpoint.

Making the environments takes minutes, so each is kept (under ``$ODIN_IMAGE_ENVS``, default the temp folder)
keyed by a hash of pyproject.toml, the Dockerfile and the interpreter, and reused by later sessions; this
checkout's code is installed into it again (without dependencies) every session, and runs from the copied
files as in the image.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import BUCKET, ROOT, SAMPLE

pytestmark = pytest.mark.slow

ENVS = Path(os.environ.get("ODIN_IMAGE_ENVS") or Path(tempfile.gettempdir()) / "odin-image-envs")
PIP_TIMEOUT_S = 1800
# the base image `make build-docker` passes as PYTHON_IMAGE (pinned by digest there)
BASE_IMAGE = re.search(r"^PYTHON_TAG = (\S+)", (ROOT / "images" / "base-images.mk").read_text(), re.M).group(1)
# PyTorch's platform build: the GPU image's lock pins PyPI's CUDA wheels (several GB); its environment here takes
# this machine's build of the same torch version instead, as `make venv` does (the Makefile's list of what
# dev.lock leaves out), and everything else exactly as the lock says
NOT_HERE = set(re.search(r"NOT_IN_DEV_LOCK = (.*?)\n(?!\t)", (ROOT / "Makefile").read_text(), re.S)
               .group(1).replace("\\", " ").split())


@dataclass(frozen=True)
class Dockerfile:
    """What a Dockerfile's final stage says about the environment it makes."""

    python: str  # minor version of the base image's Python, "3.11"
    copies: tuple[tuple[tuple[str, ...], str], ...]  # (sources in the build context, destination under WORKDIR)
    installs: tuple[str, ...]  # the `pip install ...` commands of its RUN lines
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]


def parse(path: Path) -> Dockerfile:
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    final = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    python = re.search(r"python:(\d+\.\d+)", lines[final].replace("${PYTHON_IMAGE}", BASE_IMAGE))
    assert python, f"{path}: the final stage's base image names no Python version: {lines[final]}"
    copies, installs, entrypoint, cmd = [], [], (), ()
    for line in lines[final + 1:]:
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "COPY":
            args = [a for a in shlex.split(rest) if not a.startswith("--chown") and not a.startswith("--chmod")]
            if not any(a.startswith("--from") for a in args):
                copies.append((tuple(args[:-1]), args[-1]))
        elif word == "RUN":
            installs += [part.strip() for part in rest.split("&&") if re.match(r"\s*(python -m )?pip install", part)]
        elif word == "ENTRYPOINT":
            entrypoint = tuple(json.loads(rest))
        elif word == "CMD":
            cmd = tuple(json.loads(rest))
    assert installs, f"{path}: no pip install in its final stage"
    return Dockerfile(python.group(1), tuple(copies), tuple(installs), entrypoint, cmd)


def copy_context(spec: Dockerfile, root: Path) -> None:
    """The files the image's COPY lines take from the build context, laid out under its WORKDIR (``root``)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for sources, dest in spec.copies:
        for source in sources:
            src = ROOT / source
            target = root / dest / src.name if dest.endswith("/") or len(sources) > 1 else root / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, target, ignore=ignore, dirs_exist_ok=True)
            else:
                shutil.copy2(src, target)


def _interpreter(minor: str) -> str:
    if f"{sys.version_info.major}.{sys.version_info.minor}" == minor:
        return sys.executable
    found = shutil.which(f"python{minor}")
    if found is None:
        pytest.skip(f"no Python {minor} here to make the image's environment with")
    return found


def _pip(command: str) -> list[str]:
    """An install line as the venv's pip runs it. --no-cache-dir keeps an image small; here the cache makes the
    environment in seconds instead of minutes, and installs exactly the same files."""
    args = [a for a in shlex.split(command) if a != "--no-cache-dir"]
    return args[args.index("install"):]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything pointing at the development environment or the checkout."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PIP_NO_CACHE_DIR") and not k.startswith("PYTEST")}
    return dict(env, ODIN_NO_PROGRESS="1", PYTHONDONTWRITEBYTECODE="1", **extra)


@dataclass(frozen=True)
class ImageEnv:
    name: str
    spec: Dockerfile
    root: Path  # the image's files, fresh from this checkout
    venv: Path

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def run(self, args: list[str], env: dict[str, str], timeout: float = 600, cwd: Path | None = None):
        return subprocess.run(args, cwd=cwd or self.root, env=env, capture_output=True, text=True, timeout=timeout)


def _pip_in(venv: Path, args: list[str], cwd: Path) -> None:
    env = clean_env(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", *args],
                            cwd=cwd, env=env, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    assert result.returncode == 0, f"pip {shlex.join(args)} in {venv.name}:\n{result.stdout[-2000:]}{result.stderr[-4000:]}"  # noqa: E501


def _without_cuda(args: list[str], context: Path) -> str | None:
    """Leave PyTorch's CUDA build out of a lock an install line names (rewritten in the image's copy of the
    context); the ``torch==version`` to install instead, or None when the lock has no torch."""
    if "-r" not in args:
        return None
    lock = context / args[args.index("-r") + 1]
    entries = re.split(r"\n(?=\S)", lock.read_text())
    pins = {e.split("==")[0]: e.split()[0] for e in entries if "==" in e.split("\n")[0] and not e.startswith("#")}
    if "torch" not in pins:
        return None
    lock.write_text("\n".join(e for e in entries if e.split("==")[0] not in NOT_HERE))
    return pins["torch"]


def _make_venv(name: str, spec: Dockerfile, interpreter: str, key: str, context: Path) -> Path:
    """The image's environment, made once per key and kept (a session that dies while making it leaves no
    ``.ready``, so the next one starts over); older keys of the image are removed."""
    ENVS.mkdir(parents=True, exist_ok=True)
    venv = ENVS / f"{name}-{key}"
    with open(ENVS / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions at once make it once
        if not (venv / ".ready").is_file():
            for old in ENVS.iterdir():
                if re.fullmatch(rf"{re.escape(name)}-[0-9a-f]{{16}}", old.name):
                    shutil.rmtree(old, ignore_errors=True)
            subprocess.run([interpreter, "-m", "venv", str(venv)], check=True, timeout=300)
            for command in spec.installs:
                torch = _without_cuda(_pip(command), context)
                _pip_in(venv, _pip(command), context)
                if torch:
                    _pip_in(venv, ["install", "--quiet", "--no-deps", torch], context)
            (venv / ".ready").touch()
        # this checkout's code, as the install line installed it (its dependencies are the kept ones)
        _pip_in(venv, ["install", "--quiet", "--no-deps", "--force-reinstall", "."], context)
    return venv


def image_env(name: str, tmp_path_factory) -> ImageEnv:
    dockerfile = ROOT / "images" / name / "Dockerfile"
    spec = parse(dockerfile)
    interpreter = _interpreter(spec.python)
    version = subprocess.run([interpreter, "-c", "import sys; print(sys.version)"], capture_output=True, text=True,
                             check=True).stdout
    locks = [p.read_bytes() for p in sorted((ROOT / "requirements").glob("*.lock"))]
    key = hashlib.sha256(b"\0".join([(ROOT / "pyproject.toml").read_bytes(), dockerfile.read_bytes(), *locks,
                                      version.encode()])).hexdigest()[:16]
    root = tmp_path_factory.mktemp(f"image-{name}")
    copy_context(spec, root)
    return ImageEnv(name, spec, root, _make_venv(name, spec, interpreter, key, root))


@pytest.fixture(scope="session")
def functions_image(tmp_path_factory) -> ImageEnv:
    return image_env("functions", tmp_path_factory)


@pytest.fixture(scope="session")
def detector_cpu_image(tmp_path_factory) -> ImageEnv:
    return image_env("detector-cpu", tmp_path_factory)


@pytest.fixture(scope="session")
def detector_image(tmp_path_factory) -> ImageEnv:
    return image_env("detector", tmp_path_factory)


# Plays the state machine's tasks in the functions image as Lambda would call them: each handler by its module
# path (the image's CMD names one), with the event the state machine builds; the array job in between runs
# the command it is given once per index, as Batch does.
LAMBDA_DRIVER = r"""
import importlib, json, os, subprocess, sys

plan = json.loads(sys.argv[1])
state, session, called = dict(plan["input"]), plan["session"], []


def invoke(handler, event):
    module, function = handler.rsplit(".", 1)
    called.append(handler)
    return getattr(importlib.import_module(module), function)(event, None)


def event(**extra):
    return {"state": state, "session_id": session, **extra}


for step in plan["steps"]:
    if step.get("shards"):  # a Distributed Map over the shard list written by an earlier task
        g = state["GuardBudget"]
        fs = importlib.import_module("wildlife.fs")
        items = json.loads(fs.read_bytes(f"s3://{g['shards_bucket']}/{g['shards_key']}"))
        for item in items:
            invoke(step["shards"], event(shard=item["shard"]))
    if step.get("array_job"):
        estimate = state["CostEstimation"]
        for index in range(int(estimate["array_size"])):
            env = dict(os.environ, AWS_BATCH_JOB_ARRAY_INDEX=str(index),
                       AWS_BATCH_JOB_ARRAY_SIZE=str(estimate["array_size"]))
            job = subprocess.run(plan["batch"] + list(estimate["stage1_command"]), env=env, cwd=plan["batch_cwd"],
                                 capture_output=True, text=True)
            if job.returncode != 0:
                sys.exit(f"array index {index} exited {job.returncode}: {job.stderr[-3000:]}")
        state[step["state"] + "Job"] = {"job_id": "test", "results_uri": state["output_uri"]}
    state[step["state"]] = invoke(step["handler"], event())

failed = dict(state, output_uri=plan["failed_output_uri"], error={"Error": "StageFailed", "Cause": "a test"})
invoke(plan["failure_report"], {"state": failed, "session_id": session})
print(json.dumps({"called": called}))
"""


def _handler(folder: str) -> str:
    return f"functions.{folder}.handler.handler"


def lambda_plan() -> tuple[list[dict], str]:
    """The state machine's tasks in order, each with the functions image's handler that runs it; and the
    failure report's handler (the Catch path)."""
    from modules.functions import HANDLERS  # noqa: PLC0415
    from wildlife.graph import GRAPH  # noqa: PLC0415

    steps = []
    for stage in GRAPH:
        step = {"state": stage.name, "handler": _handler(HANDLERS[stage.name])}
        if stage.fan_out:
            step["shards"] = _handler(HANDLERS[f"{stage.name}Shards"])
        if stage.runs_on == "batch":
            step["array_job"] = True
        steps.append(step)
    return steps, _handler(HANDLERS["WriteFailureReport"])


def test_functions_image_runs_every_lambda_in_order(functions_image, detector_cpu_image, tiny_models, s3_env,
                                                    tmp_path):
    """A run as `run --target aws` starts it (the detector left to its AWS default, MegaDetector), the Lambdas
    in the functions image and the array job in the detector-cpu image, whose model cache holds MegaDetector
    as ONNX (here a random model of its architecture)."""
    from modules.functions import HANDLERS  # noqa: PLC0415

    env, client = s3_env
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(tiny_models[1], models / "md-v5a.onnx")
    shutil.copy(tiny_models[1].with_suffix(".json"), models / "md-v5a.json")
    assert functions_image.spec.cmd[0] in {_handler(f) for f in HANDLERS.values()}
    for path in sorted((SAMPLE / "photos").rglob("*.JPG")):
        client.upload_file(str(path), BUCKET, f"images-test/photos/{path.parent.name}/{path.name}")
    client.upload_file(str(SAMPLE / "deployments.csv"), BUCKET, "images-test/deployments.csv")
    steps, failure_report = lambda_plan()
    run_uri = f"s3://{BUCKET}/images-test/runs/one"
    batch = [detector_cpu_image.python, *detector_cpu_image.spec.entrypoint[1:]]  # ["python", "-m", ...]
    plan = {"session": "odin-images-test", "steps": steps, "failure_report": failure_report,
            "batch": batch, "batch_cwd": str(detector_cpu_image.root),
            "failed_output_uri": f"s3://{BUCKET}/images-test/runs/failed",
            "input": {"input_uri": f"s3://{BUCKET}/images-test/photos", "output_uri": run_uri, "budget_dkk": 25,
                      "deployments_uri": f"s3://{BUCKET}/images-test/deployments.csv",
                      "weather_provider": "none", "work_uri": f"s3://{BUCKET}/images-test/tmp/one"}}
    lambda_env = clean_env(**{k: v for k, v in env.items() if k.startswith("AWS_")}, ODIN_MODELS=str(models))
    result = functions_image.run([functions_image.python, "-c", LAMBDA_DRIVER, json.dumps(plan)], lambda_env)
    assert result.returncode == 0, result.stderr[-6000:]
    called = json.loads(result.stdout.strip().splitlines()[-1])["called"]
    assert set(called) == {_handler(f) for f in HANDLERS.values()}  # every function of the stack ran here
    report = json.loads(client.get_object(Bucket=BUCKET, Key="images-test/runs/one/run_report.json")["Body"].read())
    assert report["status"] == "succeeded" and report["images"]["by_status"] == {"ok": 10}
    assert report["stages"]["Stage1Detect"]["detector"]["name"].startswith("yolov5:tiny.pt")
    failed = json.loads(client.get_object(Bucket=BUCKET, Key="images-test/runs/failed/run_report.json")["Body"].read())
    assert failed["status"] == "failed"


def test_pip_install_gives_the_odin_command(functions_image, tmp_path):
    """A user's `pip install .` (the functions image's install line): `odin run` on the sample, from any folder,
    with the installed code only."""
    odin = functions_image.venv / "bin" / "odin"
    out = tmp_path / "out"
    result = functions_image.run([str(odin), "run", "--input", str(SAMPLE / "photos"), "--deployments",
                                  str(SAMPLE / "deployments.csv"), "--output", str(out), "--budget", "25"],
                                 clean_env(ODIN_MODELS=str(tmp_path / "models")), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "done" in result.stdout + result.stderr
    report = json.loads((out / "run_report.json").read_text())
    assert report["status"] == "succeeded" and report["images"]["by_status"] == {"ok": 10}
    assert report["stages"]["Stage1Detect"]["detector"]["name"] == "odin-motion-baseline"  # no torch: auto falls back


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> tuple[Path, Path]:
    """A random MDv5-architecture checkpoint, as MegaDetector publishes its weights, and its ONNX export."""
    from tinymodels import save_checkpoint  # noqa: PLC0415

    from wildlife.detect import weights, yolo  # noqa: PLC0415

    folder = tmp_path_factory.mktemp("tiny-models")
    checkpoint = folder / "tiny.pt"
    save_checkpoint(dict(yolo.p5(3, 0.33, 0.125), names=["animal", "person", "vehicle"]), checkpoint)
    onnx = weights.export_onnx(weights.load_yolov5(checkpoint), folder / "tiny.onnx", 640)
    return checkpoint, onnx


def _run_shard(image: ImageEnv, model: Path, media: Path, out: Path, tmp_path: Path) -> dict:
    env = clean_env(ODIN_MODELS=str(tmp_path / "models"), AWS_BATCH_JOB_ARRAY_INDEX="0", AWS_BATCH_JOB_ARRAY_SIZE="1")
    args = [image.python, *image.spec.entrypoint[1:], "--input", str(media), "--output", str(out),
            "--detector", str(model)]
    result = image.run(args, env)
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["shard"], summary["of"]) == (0, 1)
    rows = pq.read_table(out / "shard-00000.parquet").to_pylist()
    ok = {r["photo_id"] for r in pq.read_table(media).to_pylist() if r["status"] == "ok"}
    assert {r["photo_id"] for r in rows} == ok and summary["failed"] == 0
    return summary


def test_detector_cpu_image_runs_a_shard_with_an_onnx_model(detector_cpu_image, sample_run, tiny_models, tmp_path):
    assert detector_cpu_image.spec.entrypoint[:3] == ("python", "-m", "runtimes.batch")
    summary = _run_shard(detector_cpu_image, tiny_models[1], sample_run / "_run" / "media.parquet", tmp_path / "o",
                         tmp_path)
    assert summary["detector"]["name"].startswith("yolov5:tiny.pt")
    torch = detector_cpu_image.run([detector_cpu_image.python, "-c", "import torch"], clean_env())
    assert torch.returncode != 0  # the slim image: onnxruntime only


def test_detector_image_runs_a_shard_with_a_checkpoint(detector_image, sample_run, tiny_models, tmp_path):
    assert detector_image.spec.entrypoint[:3] == ("python", "-m", "runtimes.batch")
    summary = _run_shard(detector_image, tiny_models[0], sample_run / "_run" / "media.parquet", tmp_path / "o",
                         tmp_path)
    assert summary["detector"]["name"].startswith("yolov5:tiny.pt")
