"""`scripts/run.py stage NAME --output RUN`: one stage of a finished run again, then the stages after it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import photofactory as pf
import pyarrow.parquet as pq
import pytest
from conftest import odin

from wildlife import stage1
from wildlife.graph import GRAPH

PHOTOS = 12


@pytest.fixture
def finished(tmp_path):
    """A finished run: one camera, four bursts of three photos an hour apart, each with an animal moving."""
    photos, out = tmp_path / "photos", tmp_path / "out"
    for b in range(PHOTOS // 3):
        bg = pf.scene(320, 240, seed=b)
        for i in range(3):
            pf.write_photo(photos / "cam" / f"IMG_{b}_{i}.JPG", pf.with_animal(bg, (0.1 + 0.2 * i, 0.3, 0.2, 0.3)),
                           when=datetime(2024, 7, 1, 6) + timedelta(hours=b, seconds=i))
    result = odin("run", "--input", str(photos), "--output", str(out), "--budget", "25", "--detector", "motion",
                  "--weather-provider", "none", "--independence", "36000")
    assert result.returncode == 0, result.stderr
    return out


def _state(out):
    return json.loads((out / "_run" / "state.json").read_text())


def test_stage2_again_with_another_independence_rewrites_the_outputs(finished):
    before = pq.read_table(finished / "clusters.parquet").column("independent").to_pylist()
    result = odin("stage", "Stage2Events", "--output", str(finished), "--independence", "0")
    assert result.returncode == 0, result.stderr
    after = pq.read_table(finished / "clusters.parquet").column("independent").to_pylist()
    assert len(after) == len(before) > 1 and all(after) and not all(before)  # 0 s apart is always independent
    report = json.loads((finished / "run_report.json").read_text())
    assert report["status"] == "succeeded" and report["params"]["independence_s"] == 0
    state = _state(finished)
    assert state["done"] == [s.name for s in GRAPH] and state["params"]["independence_s"] == 0
    assert "re-running Stage2Events" in result.stderr and "done" in result.stderr


def test_stage1_again_starts_its_checkpoints_afresh(finished):
    result = odin("stage", "Stage1Detect", "--output", str(finished), "--sequence-gap", "5")
    assert result.returncode == 0, result.stderr
    stage1 = json.loads((finished / "run_report.json").read_text())["stages"]["Stage1Detect"]
    assert stage1["resumed"] == 0 and stage1["photos"] == PHOTOS
    assert _state(finished)["params"]["sequence_gap_s"] == 5


def test_a_setting_an_earlier_stage_read_is_refused_and_nothing_changes(finished):
    state = _state(finished)
    result = odin("stage", "WeatherEnrichment", "--output", str(finished), "--independence", "60")
    assert result.returncode == 2
    assert "independence_s is read before WeatherEnrichment (by Stage2Events)" in result.stderr
    assert _state(finished) == state


def test_no_run_in_the_folder_is_the_users_to_fix(tmp_path):
    result = odin("stage", "Stage2Events", "--output", str(tmp_path))
    assert result.returncode == 2 and "holds no run" in result.stderr


def test_each_stage_reads_tables_an_earlier_stage_wrote_once(finished):
    """The data flow the graph declares is the one a run takes; each table is written once."""
    state, written = _state(finished), set()
    for stage in GRAPH:
        assert set(stage.reads) <= written, f"{stage.name} reads a table no earlier stage writes"
        assert {f"{t}_uri" for t in stage.writes} <= set(state[stage.name]), stage.name
        assert not written & set(stage.writes), f"{stage.name} writes a table again"
        written |= set(stage.writes)
    assert state["Stage2Events"]["detections_uri"] == str(finished / "detections.parquet")
    assert not (finished / "_run" / "detections.parquet").exists()  # the user's copy is the only one
    # sequences are cut once, in Stage 1 (the motion baseline compares their photos): the user's are those
    cut = {r["photo_id"]: r["sequence_id"] for r in stage1.read_results(state["Stage1Detect"]["results_uri"])
           .to_pylist()}
    images = pq.read_table(finished / "images.parquet").to_pylist()
    assert {r["photo_id"]: r["sequence_id"] for r in images} == cut and len(set(cut.values())) == PHOTOS // 3
