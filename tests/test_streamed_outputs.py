"""megadetector.json and the Camtrap DP CSVs are made a slice of photos at a time (``wildlife.rowbatches``):
cut into slices of one, two or three rows, every file is byte for byte what one slice gives. A detection whose
photo lies in another slice, or a slice boundary that drops or repeats a row, changes the files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from wildlife import camtrapdp, fs, rowbatches, stage2
from wildlife.detect import mdjson

T0 = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)


class _Frozen(datetime):
    @classmethod
    def now(cls, tz=None):
        return T0


def _tables() -> tuple[pa.Table, pa.Table, pa.Table]:
    """Seven photos in two deployments (one failed, one the detector did not judge), their boxes listed in
    an order of their own (last photo first), a person on p4, a vehicle on p0, and one box of a photo not in the run."""
    images = pa.Table.from_pylist([{
        "photo_id": f"p{i}", "relpath": f"{'ab'[i % 2]}/p{i}.jpg", "status": "failed" if i == 5 else "ok",
        "reason": "cannot decode" if i == 5 else None, "deployment_id": "ab"[i % 2], "format": "jpeg",
        "timestamp": T0 + timedelta(seconds=60 * i), "timestamp_local": (T0 + timedelta(seconds=60 * i)).replace(
            tzinfo=None), "utc_offset_min": 0, "clock_flags": [], "assessed": i != 3, "event_id": f"e{i // 3}"}
        for i in range(7)])
    boxes = [("p6", "animal", 0.7), ("p0", "animal", 0.4), ("p4", "person", 0.9), ("p2", "animal", 0.3),
             ("p0", "animal", 0.8), ("gone", "animal", 0.9), ("p4", "animal", 0.6), ("p2", "animal", 0.1),
             ("p0", "vehicle", 0.5)]
    detections = pa.Table.from_pylist([
        {"detection_id": f"d{k}", "photo_id": pid, "relpath": "x", "deployment_id": "a", "timestamp": T0,
         "category": cat, "conf": conf, "bbox_x": 0.1 * k, "bbox_y": 0.2, "bbox_w": 0.3, "bbox_h": 0.2,
         "suspected_static": k == 3, "detector": "test", "event_id": "e0" if pid == "p0" else None}
        for k, (pid, cat, conf) in enumerate(boxes)], schema=stage2.DETECTION_SCHEMA)
    events = pa.Table.from_pylist([
        {"cluster_id": f"e{j}", "deployment_id": "ab"[j % 2], "start_time": T0, "end_time": T0 + timedelta(minutes=2),
         "photo_count": 3, "top_category": "animal", "max_conf": 0.8, "count": 1, "independent": True}
        for j in range(3)], schema=stage2.EVENT_SCHEMA)
    return images, detections, events


def _outputs(folder, humans: str) -> tuple[dict[str, bytes], dict]:
    images, detections, events = _tables()
    fs.write_json(str(folder / "megadetector.json"), mdjson.build(images, detections, {"name": "t", "version": "1"}))
    payload = camtrapdp.export(str(folder / "dp"), images, detections, events, deployments_uri=None,
                               coords={"a": (55.7, 12.5), "b": (55.8, 12.6)}, detector="t 1", threshold=0.2,
                               session_id="s1", humans=humans)
    files = {p.name: p.read_bytes() for p in [folder / "megadetector.json", *sorted((folder / "dp").iterdir())]}
    return files, payload


@pytest.mark.parametrize("humans", ["blur", "drop"])
def test_files_written_in_slices_are_the_files_written_at_once(tmp_path, monkeypatch, humans):
    monkeypatch.setattr(camtrapdp, "datetime", _Frozen)
    monkeypatch.setattr(mdjson, "datetime", _Frozen)
    whole, whole_payload = _outputs(tmp_path / "whole", humans)
    media = whole["media.csv"].decode().splitlines()
    assert len(media) == 1 + (6 if humans == "blur" else 4)  # the ok photos; drop: not p0 (vehicle), p4 (person)
    assert whole["observations.csv"].count(b"\np0-blank") == 0 and b"\np1-blank" in whole["observations.csv"]
    for rows in (1, 2, 3):
        monkeypatch.setattr(rowbatches, "ROWS", rows)
        sliced, payload = _outputs(tmp_path / f"rows-{rows}", humans)
        for name, data in whole.items():
            assert sliced[name] == data, f"{name} differs when written {rows} row(s) at a time"
        assert payload == dict(whole_payload, uri=payload["uri"])
