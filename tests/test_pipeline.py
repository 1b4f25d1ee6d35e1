"""End to end, through the CLI as users run it: outputs, bad input, budget refusal, kill -9 and resume."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import photofactory as pf
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import ROOT, odin

from wildlife import budget
from wildlife.answers import tables as answer_tables


def test_sample_run_writes_the_four_outputs(sample_run: Path):
    for name in ("images.parquet", "detections.parquet", "clusters.parquet", "run_report.json"):
        assert (sample_run / name).is_file(), name
    report = json.loads((sample_run / "run_report.json").read_text())
    assert report["status"] == "succeeded"
    assert report["final_results"]["files_created"] == [str(sample_run / n) for n in (
        "images.parquet", "detections.parquet", "clusters.parquet", "deployments.parquet", "megadetector.json",
        "camtrap-dp/datapackage.json", *(f"answers/{n}" for n in answer_tables.MAIN_FILES), "report.html",
        "run_report.json")]
    assert report["detector"]["name"] == "odin-motion-baseline"
    assert any("Fell back to the motion baseline" in w for w in report["warnings"])
    assert set(report["stages"]) == {"GuardBudget", "Stage0Exif", "CostEstimation", "Stage1Detect",
                                     "Stage2Events", "WeatherEnrichment", "WriteOutputs"}
    assert report["estimate"]["photos"] == 10

    images = pq.read_table(sample_run / "images.parquet").to_pylist()
    assert len(images) == 10 and {r["status"] for r in images} == {"ok"}
    first = min(images, key=lambda r: r["relpath"])
    assert first["deployment_id"] == "62c200a9"
    # the camera was set on 2021-03-27 at +01:00 and keeps that offset after the switch to summer time
    assert (first["timestamp_local"], first["utc_offset_min"]) == (datetime(2021, 4, 11, 20, 43, 9), 60)
    assert first["timestamp"].replace(tzinfo=None) == datetime(2021, 4, 11, 19, 43, 9)
    assert first["clock_flags"] == []
    assert first["moon_phase"] == "New" and first["ambient_temperature_c"] == 2.0

    clusters = pq.read_table(sample_run / "clusters.parquet").to_pylist()
    assert len(clusters) == 1 and clusters[0]["photo_count"] == 10  # the burst is one event
    assert clusters[0]["independent"] and clusters[0]["top_category"] == "animal"
    assert {r["event_id"] for r in images} == {clusters[0]["cluster_id"]}
    # the heron: the first photo's strongest box covers the bird (lower middle of the frame)
    dets = pq.read_table(sample_run / "detections.parquet").to_pylist()
    dets = [d for d in dets if d["photo_id"] == first["photo_id"]]
    best = max(dets, key=lambda d: d["conf"])
    cx, cy = best["bbox_x"] + best["bbox_w"] / 2, best["bbox_y"] + best["bbox_h"] / 2
    assert 0.4 < cx < 0.65 and 0.65 < cy < 0.9


def _bad_inputs(root: Path) -> dict[str, str]:
    """A folder of everything that goes wrong on real SD cards; returns relpath -> expected status."""
    bg = pf.scene(320, 240, seed=3)
    t0 = datetime(2024, 6, 1, 12, 0, 0)
    expected = {}
    for i in range(3):  # a good burst, nested two folders down
        rel = f"camA/100RECNX/IMG_{i:04d}.JPG"
        pf.write_photo(root / rel, pf.with_animal(bg, (0.1 + 0.2 * i, 0.4, 0.15, 0.2)), when=t0 + timedelta(seconds=i))
        expected[rel] = "ok"
    pf.write_photo(root / "camB/IMG_0000.JPG", bg, when=t0)  # same file name, other folder
    expected["camB/IMG_0000.JPG"] = "ok"
    pf.write_photo(root / "camB/rådyr_ø_狐狸.jpg", bg, when=t0 + timedelta(hours=3))  # non-ASCII name
    expected["camB/rådyr_ø_狐狸.jpg"] = "ok"
    (root / "camB/empty.jpg").write_bytes(b"")
    expected["camB/empty.jpg"] = "failed"
    whole = pf.encode_jpeg(bg, pf.exif_block(when=t0))
    (root / "camB/truncated.jpg").write_bytes(whole[: len(whole) // 2])
    expected["camB/truncated.jpg"] = "failed"
    (root / "camB/notes.jpg").write_text("this is a text file with a .jpg name\n" * 5)
    expected["camB/notes.jpg"] = "failed"
    bomb = bytearray(pf.encode_jpeg(np.zeros((8, 8, 3), np.uint8)))
    struct.pack_into(">HH", bomb, bomb.index(b"\xff\xc0") + 5, 65000, 65000)
    (root / "camB/bomb.jpg").write_bytes(bytes(bomb))
    expected["camB/bomb.jpg"] = "failed"
    (root / "camB/scan.png").write_bytes(cv2.imencode(".png", bg)[1].tobytes())
    expected["camB/scan.png"] = "ok"
    (root / "camB/scan.tif").write_bytes(cv2.imencode(".tif", bg)[1].tobytes())
    expected["camB/scan.tif"] = "ok"
    os.symlink(root / "does-not-exist.jpg", root / "camB/dangling.jpg")
    expected["camB/dangling.jpg"] = "skipped"
    locked = root / "camB/locked.jpg"
    locked.write_bytes(whole)
    locked.chmod(0)
    expected["camB/locked.jpg"] = "failed" if os.geteuid() != 0 else "ok"  # root reads anything
    (root / "camB/README.txt").write_text("field notes")
    expected["camB/README.txt"] = "skipped"
    bad_name = os.fsencode(str(root / "camB")) + b"/bad-\xff-name.jpg"
    with open(bad_name, "wb") as f:
        f.write(pf.encode_jpeg(bg, pf.exif_block(when=t0 + timedelta(hours=5))))
    expected["camB/bad-\\xff-name.jpg"] = "ok"
    return expected


def test_bad_input_never_crashes_and_never_disappears(tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    expected = _bad_inputs(photos)
    result = odin("run", "--input", str(photos), "--output", str(out), "--budget", "1", "--detector", "motion")
    assert result.returncode == 0, result.stderr
    images = pq.read_table(out / "images.parquet").to_pylist()
    by_path = {r["relpath"]: r for r in images}
    assert len(images) == len(by_path) == len(expected)  # every file exactly once
    assert {p: r["status"] for p, r in by_path.items()} == expected
    reasons = {p: r["reason"] for p, r in by_path.items()}
    assert "empty file" in reasons["camB/empty.jpg"]
    assert "truncated JPEG" in reasons["camB/truncated.jpg"]
    assert "holds text" in reasons["camB/notes.jpg"]
    assert "decompression bomb" in reasons["camB/bomb.jpg"]
    assert "dangling" in reasons["camB/dangling.jpg"]
    assert "not a photo or video file" in reasons["camB/README.txt"]
    assert all(r["reason"] for r in images if r["status"] != "ok")
    # no EXIF: the file time is used and flagged
    assert "no_exif_time" in by_path["camB/scan.png"]["clock_flags"]
    # folders are deployments when no table is given; duplicate names stay apart
    assert by_path["camA/100RECNX/IMG_0000.JPG"]["deployment_id"] == "camA"
    assert by_path["camB/IMG_0000.JPG"]["deployment_id"] == "camB"
    report = json.loads((out / "run_report.json").read_text())
    assert report["images"]["total"] == len(expected)
    # the moving blob in the good burst is found
    assert by_path["camA/100RECNX/IMG_0001.JPG"]["n_detections"] >= 1


def test_estimate_over_budget_for_aws_exits_3_and_starts_nothing(tmp_path):
    result = odin("estimate", "--input", str(ROOT / "data/sample/photos"), "--budget", "0.001", "--target", "aws")
    assert result.returncode == 3, result.stderr
    assert "exceeds the budget of 0.001 DKK" in result.stderr
    assert "raise --budget to at least 1" in result.stderr
    assert "compute (g4dn.xlarge, spot)" in result.stderr  # the breakdown is printed


def test_estimate_within_budget_exits_0():
    result = odin("estimate", "--input", str(ROOT / "data/sample/photos"), "--budget", "25", "--target", "aws")
    assert result.returncode == 0, result.stderr
    assert "within budget" in result.stderr


def test_run_over_time_budget_is_refused_before_any_work(tmp_path):
    out = tmp_path / "out"
    prices = yaml.safe_load(Path(budget.DEFAULT_PRICES).read_text())
    prices["local"]["ms_per_photo"]["motion"] = 1000  # a slow machine: 10 photos take 10 s
    (tmp_path / "prices.yaml").write_text(yaml.safe_dump(prices))
    result = odin("run", "--input", str(ROOT / "data/sample/photos"), "--output", str(out), "--budget", "25",
                  "--detector", "motion", "--max-job-duration", "1", "--prices", str(tmp_path / "prices.yaml"))
    assert result.returncode == 3, result.stderr
    assert "exceeds --max-job-duration" in result.stderr
    assert not (out / "images.parquet").exists()
    assert not (out / "_run" / "stage0").exists()  # Stage 0 never started
    report = json.loads((out / "run_report.json").read_text())
    assert report["status"] == "budget_exceeded" and report["error"]["stage"] == "GuardBudget"


def test_other_targets_say_not_deployed(tmp_path):
    result = odin("run", "--input", str(ROOT / "data/sample/photos"), "--output", str(tmp_path / "o"),
                  "--budget", "25", "--target", "aws")
    assert result.returncode == 1
    assert "not deployed" in result.stderr and "Traceback" not in result.stderr


def test_existing_output_needs_resume(sample_run: Path):
    result = odin("run", "--input", str(ROOT / "data/sample/photos"), "--output", str(sample_run), "--budget", "25")
    assert result.returncode == 2
    assert "--resume" in result.stderr


def test_max_images_caps_in_path_order(tmp_path):
    out = tmp_path / "out"
    result = odin("run", "--input", str(ROOT / "data/sample/photos"), "--output", str(out), "--budget", "25",
                  "--max-images", "4", "--detector", "motion")
    assert result.returncode == 0, result.stderr
    images = sorted(pq.read_table(out / "images.parquet").to_pylist(), key=lambda r: r["relpath"])
    assert [r["status"] for r in images] == ["ok"] * 4 + ["skipped"] * 6
    assert "beyond --max-images 4" in images[-1]["reason"]


def _make_bursts(root: Path, bursts: int, size=(1024, 768)) -> int:
    t0 = datetime(2024, 7, 1, 6, 0, 0)
    n = 0
    for b in range(bursts):
        bg = pf.scene(*size, seed=b)
        for i in range(5):
            when = t0 + timedelta(hours=b, seconds=i)
            pf.write_photo(root / f"dep{b % 3}" / f"IMG_{b:03d}_{i}.JPG",
                           pf.with_animal(bg, (0.1 + 0.15 * i, 0.3, 0.1, 0.2)), when=when)
            n += 1
    return n


@pytest.mark.slow
def test_kill_9_and_resume_processes_every_photo_exactly_once(tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    total = _make_bursts(photos, 60)
    args = [sys.executable, str(ROOT / "scripts/run.py"), "run", "--input", str(photos), "--output", str(out),
            "--budget", "5", "--detector", "motion", "--checkpoint-every", "10"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    parts = out / "_run" / "stage1" / "shard-00000"  # Stage 1 runs locally as shard 0 of 1
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if parts.is_dir() and len([p for p in parts.iterdir() if p.name.startswith("part-")]) >= 3:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "images.parquet").exists()

    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    images = pq.read_table(out / "images.parquet").to_pylist()
    assert len(images) == total and len({r["photo_id"] for r in images}) == total
    assert Counter(r["status"] for r in images) == {"ok": total}
    report = json.loads((out / "run_report.json").read_text())
    assert report["status"] == json.loads((out / "_run" / "state.json").read_text())["status"] == "succeeded"
    stage1 = report["stages"]["Stage1Detect"]
    assert stage1["resumed"] >= 30  # the checkpointed work was not redone
    assert stage1["photos"] == total
    dets = pq.read_table(out / "detections.parquet").column("detection_id").to_pylist()
    assert len(dets) == len(set(dets))


@pytest.mark.slow
def test_ctrl_c_saves_the_state_and_says_interrupted_everywhere(tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    _make_bursts(photos, 60)
    # Ctrl-C as in a terminal, where SIGINT raises KeyboardInterrupt: a test session started in the background
    # (`make test &`, a script's job) ignores SIGINT, and the run would inherit that, never see the interrupt and
    # finish. Set in the child's Python before the CLI starts (a preexec_fn is unsafe beside xdist's threads).
    as_in_a_terminal = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                        "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
    args = [sys.executable, "-c", as_in_a_terminal, str(ROOT / "scripts/run.py"), "run", "--input", str(photos),
            "--output", str(out), "--budget", "5", "--detector", "motion", "--weather-provider", "none",
            "--checkpoint-every", "10"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    parts = out / "_run" / "stage1" / "shard-00000"  # Stage 1 runs locally as shard 0 of 1
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if parts.is_dir() and any(p.name.startswith("part-") for p in parts.iterdir()):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted: run" in stderr and "stopped at Stage1Detect" in stderr
    state = json.loads((out / "_run" / "state.json").read_text())
    report = json.loads((out / "run_report.json").read_text())
    assert state["status"] == report["status"] == "interrupted"
    assert report["error"]["stage"] == "Stage1Detect"


def test_a_run_stopped_at_its_time_limit_says_deadline_reached_everywhere(tmp_path):
    from wildlife import runner  # noqa: PLC0415
    from wildlife.checkpoint import DeadlineReached  # noqa: PLC0415

    prices = tmp_path / "prices.yaml"  # an estimate of no time at all passes the guard of any time limit
    table = yaml.safe_load(Path(budget.DEFAULT_PRICES).read_text())
    table["local"]["ms_per_photo"] = dict.fromkeys(table["local"]["ms_per_photo"], 0)
    table["local"]["setup_s"] = dict.fromkeys(table["local"].get("setup_s", {}), 0)
    prices.write_text(yaml.safe_dump(table))
    out = tmp_path / "out"
    params = {"input_uri": str(ROOT / "data/sample/photos"), "output_uri": str(out), "budget_dkk": 1.0,
              "use_spot": True, "max_images": None, "max_job_duration": 1e-9, "weather_days_back": 0,
              "target": "local", "detector": "motion", "instance_type": None, "prices_uri": str(prices),
              "deployments_uri": None, "sequence_gap_s": 60.0, "conf_threshold": 0.2, "weather_provider": "none",
              "independence_s": 1800.0}
    ended = []
    with pytest.raises(DeadlineReached) as stopped:
        runner.run(params, on_end=ended.append)
    assert stopped.value.exit_code == 1 and "--resume" in stopped.value.hint
    state = json.loads((out / "_run" / "state.json").read_text())
    report = json.loads((out / "run_report.json").read_text())
    assert state["status"] == report["status"] == ended[0]["status"] == "deadline_reached"
    assert report["error"]["stage"] == "Stage0Exif"
