"""Progress a person can follow in a log, the run report's measured time, and Stage 0 on both cores: the same
media table whichever way it is computed."""

from __future__ import annotations

import json
import os
import pickle
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import photofactory as pf
import pyarrow as pa
import pyarrow.compute as pc
from conftest import odin

from wildlife import exif, fs, outputs, parallel, report_html, runner, stage0, stages
from wildlife.runinput import RunInput

T0 = datetime(2024, 6, 1, 5, 0, 0)


def _folder(root: Path, n: int = 30) -> Path:
    """``n`` photos in two deployment folders, bursts of 3, an animal in every third; one broken file, one
    text file, and a burst whose time runs backwards."""
    bg = pf.scene(320, 240, seed=3)
    for i in range(n):
        when = T0 + timedelta(minutes=10 * (i // 3), seconds=2 * (i % 3))
        if i == 7:
            when -= timedelta(seconds=30)  # runs backwards inside its burst
        pixels = pf.with_animal(bg, (0.3, 0.3, 0.2, 0.3)) if i % 3 == 1 else bg
        pf.write_photo(root / f"cam{i // 3 % 2}" / f"IMG_{i:04d}.JPG", pixels, when=when, gps=(55.7, 12.5))
    (root / "cam0" / "broken.jpg").write_bytes(b"\xff\xd8 not a photo")
    (root / "cam1" / "notes.txt").write_text("field notes")
    return root


def test_piped_run_prints_progress_lines_for_every_stage(tmp_path):
    folder = _folder(tmp_path / "in")
    env = {k: v for k, v in os.environ.items() if k != "ODIN_NO_PROGRESS"}
    env["ODIN_PROGRESS_INTERVAL_S"] = "0.01"
    result = odin("run", "--input", str(folder), "--output", str(tmp_path / "out"), "--budget", "5",
                  "--detector", "motion", "--weather-provider", "none", "--checkpoint-every", "10", env=env)
    assert result.returncode == 0, result.stderr
    log = result.stderr
    # each loop ends with its count, the time it took and its rate
    assert re.search(r"^Stage 0  EXIF \+ clock: 31/31 photos \(100%\), done in [\d.]+ s", log, re.M), log
    assert re.search(r"^Stage 0  clock, per deployment: 32/32 rows \(100%\), done in", log, re.M), log
    stage1_done = r"^Stage 1  odin-motion-baseline: 30/30 photos \(100%\), done in [\d.]+ s \([\d.,]+ photos/s\)"
    assert re.search(stage1_done, log, re.M), log
    assert re.search(r"^WriteOutputs: 7/7 steps \(100%\), done in", log, re.M), log
    # lines on the way: done/total, rate and time left (Stage 1 checkpoints every 10 photos here, whole bursts)
    on_the_way = r"^Stage 1  odin-motion-baseline: [12]\d/30 photos \(\d+%\), [\d.,]+ photos/s, about [\d.]+ s left"
    assert re.search(on_the_way, log, re.M), log
    assert re.search(r"^WriteOutputs: \d/7 steps \(\d+%\), .*· (Camtrap DP|answers|report.html)", log, re.M), log
    # a stage without a loop of its own still says it is alive
    assert re.search(r"^GuardBudget: running for [\d.]+ s", log, re.M), log
    assert re.search(r"^Stage2Events: running for [\d.]+ s", log, re.M), log
    assert "photos (" not in result.stdout  # stdout stays data


def test_progress_lines_respect_no_progress(tmp_path):
    folder = _folder(tmp_path / "in", n=6)
    env = dict(os.environ, ODIN_NO_PROGRESS="1", ODIN_PROGRESS_INTERVAL_S="0.01")
    result = odin("run", "--input", str(folder), "--output", str(tmp_path / "out"), "--budget", "5",
                  "--detector", "motion", "--weather-provider", "none", env=env)
    assert result.returncode == 0, result.stderr
    assert "running for" not in result.stderr and "done in" not in result.stderr


def test_run_report_measured_time_includes_rendering_the_report(tmp_path, monkeypatch):
    """A fake clock for WriteOutputs: rendering report.html takes 1000 s of it. Before the fix the time was
    taken before rendering, so the report said WriteOutputs took about 0 s."""
    now = [0.0]

    class Clock:
        @staticmethod
        def monotonic() -> float:
            return now[0]

    render = report_html.render

    def slow_render(*args, **kwargs):
        now[0] += 1000.0
        return render(*args, **kwargs)

    monkeypatch.setattr(outputs, "time", Clock)
    monkeypatch.setattr(report_html, "render", slow_render)
    runner.run(RunInput.from_options({"input_uri": str(_folder(tmp_path / "in", n=6)), "budget_dkk": 5.0,
                                      "output_uri": str(tmp_path / "out"), "detector": "motion",
                                      "weather_provider": "none"}).params())
    report = json.loads((tmp_path / "out" / "run_report.json").read_text())
    assert report["stages"]["WriteOutputs"]["duration_s"] >= 1000
    assert report["measured"]["wall_time_s"] >= 1000
    page = (tmp_path / "out" / "report.html").read_text()
    assert report_html.estimate_vs_measured(report) in page  # the page shows the same measured time


def _old_media(state: dict, table: dict):
    """Stage 0's media table as it was computed before: every row a dict, read in one process, one finish."""
    rows = fs.read_table(state["GuardBudget"]["manifest_uri"]).to_pylist()
    read = stage0.read_headers([r for r in rows if r["status"] == "pending"], table, exif.DEFAULT_MAX_MEGAPIXELS)
    return stage0.finish(read + [dict(r, clock_flags=[]) for r in rows if r["status"] != "pending"], table,
                         now_utc=NOW)


NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_stage0_on_worker_processes_gives_the_media_table_of_one_process(tmp_path, monkeypatch):
    folder = _folder(tmp_path / "in", n=60)
    monkeypatch.setattr(parallel, "MIN_ITEMS", 1)
    monkeypatch.setenv(parallel.WORKERS_ENV, "2")
    real_media_table = stage0.media_table  # its "now" goes to the workers with their rows (they start clean)
    monkeypatch.setattr(stage0, "media_table", lambda read, not_read, deps=None: real_media_table(read, not_read, deps,
                                                                                                   NOW))
    state = {"params": {"input_uri": str(folder), "output_uri": str(tmp_path / "out"), "budget_dkk": 5.0,
                        "use_spot": True, "target": "local", "detector": "motion"}}
    ctx = stages.Context(checkpoint_every=1000)
    state["GuardBudget"] = stages.guard_budget(state, ctx)
    payload = stages.stage0_exif(state, ctx)
    media = fs.read_table(payload["media_uri"])
    expected = _old_media(state, {})
    assert media.num_rows == 62
    assert media.to_pylist() == expected.to_pylist()
    flags = pc.list_flatten(media.column("clock_flags")).to_pylist()
    assert "time_backwards" in flags  # the per-deployment rules still see the whole burst
    assert payload["clock_flags"]["time_backwards"] == flags.count("time_backwards")
    assert payload["failed"] == 1 and payload["skipped"] == 1


def test_chunk_mapper_keeps_input_order_across_workers(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_ITEMS", 1)
    monkeypatch.setenv(parallel.WORKERS_ENV, "2")
    with parallel.chunk_mapper(_pids, 10) as run:
        out = run(list(range(10)))
    assert [i for i, _ in out] == list(range(10))
    assert os.getpid() not in {pid for _, pid in out}  # in worker processes


def _pids(items: list[int]) -> list[tuple[int, int]]:
    return [(i, os.getpid()) for i in items]


def test_a_slice_goes_to_a_worker_as_its_own_rows_not_the_whole_table():
    whole = pa.table({"photo_id": [f"{i:016x}" for i in range(100_000)], "n": list(range(100_000))})
    part = whole.slice(5_000, 100)
    assert len(pickle.dumps(part)) > len(pickle.dumps(whole)) // 2  # what a worker would get without own_rows
    mine = parallel.own_rows(part)
    assert mine.equals(part) and len(pickle.dumps(mine)) < len(pickle.dumps(whole)) // 100
    assert parallel.own_rows(whole.slice(0, 0)).equals(whole.slice(0, 0))
