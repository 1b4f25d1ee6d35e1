"""Every command fails kindly, through the CLI as users run it: exit codes, one message with a hint, no
traceback unless --debug; the run's warnings and final status reach the terminal as the report has them."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import photofactory as pf
import pytest
import yaml
from conftest import ROOT, SAMPLE, odin

from wildlife import budget, outputs
from wildlife.errors import InputError

QUICK = ("--detector", "motion", "--weather-provider", "none")


def _run(out: Path, *extra: str, photos: Path = SAMPLE / "photos", **kwargs) -> subprocess.CompletedProcess:
    return odin("run", "--input", str(photos), "--output", str(out), "--budget", "1", *extra, **kwargs)


def _report(out: Path) -> dict:
    return json.loads((out / "run_report.json").read_text())


def _state(out: Path) -> dict:
    return json.loads((out / "_run" / "state.json").read_text())


@pytest.mark.parametrize(("option", "value"), [
    ("--budget", "-1"), ("--budget", "nan"), ("--budget", "inf"),
    ("--max-job-duration", "nan"), ("--max-job-duration", "inf"),
    ("--independence", "nan"), ("--sequence-gap", "inf"), ("--conf-threshold", "nan"),
])
def test_a_bad_number_is_refused_before_anything_is_written(tmp_path, option, value):
    out = tmp_path / "out"
    options = {"--budget": "1", option: value}
    result = odin("run", "--input", str(SAMPLE / "photos"), "--output", str(out), *QUICK,
                  *(word for pair in options.items() for word in pair))
    assert result.returncode == 2, result.stderr
    assert option in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()  # no _run/ to block the next run
    assert _run(out, *QUICK).returncode == 0  # and the corrected command just runs


def test_the_budget_guard_refuses_a_budget_that_is_not_a_number():
    est = budget.estimate(10, 10_000, target="local", detector="motion")
    for bad in (float("nan"), -1.0):
        with pytest.raises(InputError, match="--budget"):
            budget.guard(est, bad, None)
    with pytest.raises(InputError, match="--max-job-duration"):
        budget.guard(est, 5.0, float("nan"))


def test_a_folder_without_photos_says_so_and_exits_2(tmp_path):
    photos, out = tmp_path / "card", tmp_path / "out"
    (photos / "DCIM").mkdir(parents=True)
    (photos / "DCIM" / "notes.txt").write_text("battery low")
    (photos / "index.csv").write_text("a,b\n")
    result = _run(out, *QUICK, photos=photos)
    assert result.returncode == 2, result.stderr
    assert f"no photo files found under {photos}: 2 file(s), none of them photos or videos" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_a_bad_model_file_is_an_input_error(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint at all")
    export = odin("models", "export", str(bad), "--output", str(tmp_path / "m.onnx"))
    assert export.returncode == 2, export.stderr
    assert f"{bad}: not a YOLOv5/MegaDetector checkpoint" in export.stderr and "Traceback" not in export.stderr
    onnx_bad = tmp_path / "model.onnx"
    onnx_bad.write_bytes(b"not a model either")
    quantize = odin("models", "quantize", str(onnx_bad), "--photos", str(SAMPLE / "photos"))
    assert quantize.returncode == 2, quantize.stderr
    assert f"{onnx_bad}: not an ONNX model" in quantize.stderr and "Traceback" not in quantize.stderr
    assert not (tmp_path / "model.int8.onnx").exists()


@pytest.mark.parametrize("how", [("--debug",), ()])
def test_debug_shows_the_traceback_and_keeps_the_exit_code(tmp_path, how):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"junk")
    env = None if how else dict(os.environ, ODIN_DEBUG="1")
    result = odin(*how, "models", "export", str(bad), "--output", str(tmp_path / "m.onnx"), env=env)
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "BadZipFile" in result.stderr
    assert "not a YOLOv5/MegaDetector checkpoint" in result.stderr


BUG = """
import runpy, sys
sys.path[:0] = [{root!r}, {root!r} + "/scripts"]
from wildlife.detect import weights
def broken():
    raise KeyError("cache")
weights.cache_dir = broken  # a bug in Odin, as users would meet one
sys.argv = ["run.py", *{args!r}]
runpy.run_path({script!r}, run_name="__main__")
"""


@pytest.mark.parametrize("debug", [False, True])
def test_a_bug_is_one_line_that_asks_for_a_report(debug):
    args = ["--debug"] * debug + ["models", "list"]
    code = BUG.format(root=str(ROOT), args=args, script=str(ROOT / "scripts" / "run.py"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 1
    assert "internal error: KeyError: 'cache' — please report it with --debug output" in result.stderr
    assert ("Traceback" in result.stderr) == debug


def _printed_warnings(stderr: str) -> list[str]:
    return [line.removeprefix("warning: ") for line in stderr.splitlines() if line.startswith("warning: ")]


def test_the_terminal_shows_the_reports_warnings(tmp_path):
    out = tmp_path / "out"
    # no deployments table: no coordinates for weather or Camtrap DP; auto falls back to the motion baseline
    result = _run(out, "--detector", "auto")
    assert result.returncode == 0, result.stderr
    report = _report(out)
    assert any("Fell back to the motion baseline" in w for w in report["warnings"])
    assert any(w.startswith("Camtrap DP:") and "left out" in w for w in report["warnings"])
    assert any(w.startswith("weather:") for w in report["warnings"])
    assert _printed_warnings(result.stderr) == report["warnings"]
    page = (out / "report.html").read_text()
    assert re.findall(r'<p class="warn">(.*?)</p>', page, re.S) == [html.escape(w) for w in report["warnings"]]


def test_one_warning_list_each_message_once_in_stage_order():
    state = {"params": {"target": "local"}, "session_id": "s", "warnings": ["run"],
             "GuardBudget": {"warnings": ["a"]}, "Stage1Detect": {"warnings": ["b", "a"]},
             "WeatherEnrichment": {"warnings": ["c", "b"]}, "camtrap_dp": {"warnings": ["d", "c"]}}
    assert outputs.warnings(state) == ["run", "a", "b", "c", "d"]
    assert outputs.report(state)["warnings"] == outputs.warnings(state)


def test_failures_are_summed_in_the_final_line(tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    t0 = datetime(2024, 6, 1, 12, 0, 0)
    for i in range(2):
        pf.write_photo(photos / "cam" / f"IMG_{i}.JPG", pf.scene(320, 240, seed=i), when=t0 + timedelta(hours=i))
    (photos / "cam" / "IMG_9.JPG").write_bytes(b"")  # an empty file: fails at Stage 0
    (photos / "cam" / "notes.txt").write_text("field notes")
    result = _run(out, *QUICK, photos=photos)
    assert result.returncode == 0, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("done run ")
    assert "2 photos read, 1 failed (1 reading + 0 detecting), 1 skipped" in last
    assert f"status and reason of {out / 'images.parquet'}" in last


def test_status_after_a_failure_and_after_the_resume(tmp_path):
    out = tmp_path / "out"
    (out / "images.parquet").mkdir(parents=True)  # the last stage cannot write its first table
    failed = _run(out, "--detector", "motion")
    assert failed.returncode == 1, failed.stderr
    assert "Traceback" not in failed.stderr
    # the warnings so far (weather: no coordinates) are printed as the report has them
    assert _report(out)["warnings"] and _printed_warnings(failed.stderr) == _report(out)["warnings"]
    assert "WriteOutputs failed: IsADirectoryError" in failed.stderr and "re-run with --resume" in failed.stderr
    assert "failed: run" in failed.stderr and "stopped at WriteOutputs" in failed.stderr
    assert _state(out)["status"] == _report(out)["status"] == "failed"
    assert _report(out)["error"]["stage"] == "WriteOutputs"

    (out / "images.parquet").rmdir()
    resumed = _run(out, "--detector", "motion", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _state(out)["status"] == _report(out)["status"] == "succeeded"
    assert "error" not in _report(out)
    assert '<span id="status">succeeded</span>' in (out / "report.html").read_text()
    assert resumed.stderr.strip().splitlines()[-1].startswith("done run ")


def test_status_after_a_plain_run(tmp_path):
    out = tmp_path / "out"
    result = _run(out, *QUICK)
    assert result.returncode == 0, result.stderr
    assert _state(out)["status"] == _report(out)["status"] == "succeeded"
    assert '<span id="status">succeeded</span>' in (out / "report.html").read_text()


def test_budget_refusal_is_the_status_everywhere(tmp_path):
    out = tmp_path / "out"
    prices = yaml.safe_load(Path(budget.DEFAULT_PRICES).read_text())
    prices["local"]["ms_per_photo"]["motion"] = 1000  # a slow machine: 10 photos take 10 s
    (tmp_path / "prices.yaml").write_text(yaml.safe_dump(prices))
    result = _run(out, "--detector", "motion", "--max-job-duration", "1", "--prices", str(tmp_path / "prices.yaml"))
    assert result.returncode == 3, result.stderr
    assert _state(out)["status"] == _report(out)["status"] == "budget_exceeded"
    assert "budget_exceeded: run" in result.stderr and "stopped at GuardBudget" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("text", ["as_of: [\n", "- just\n- a list\n"])
def test_a_broken_price_table_is_an_input_error_before_anything_is_written(tmp_path, text):
    prices, out = tmp_path / "prices.yaml", tmp_path / "out"
    prices.write_text(text)
    result = _run(out, *QUICK, "--prices", str(prices))
    assert result.returncode == 2, result.stderr
    assert f"price table {prices}" in result.stderr and "Check --prices" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert not out.exists()
