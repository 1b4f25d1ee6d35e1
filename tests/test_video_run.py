"""Videos in a whole run through the CLI: the per-video rows, MegaDetector's video JSON, Camtrap DP, the report,
species per frame. Every video is made by the test (``videofactory``)."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import videofactory
from conftest import SAMPLE, odin
from videofactory import H, W, av_video, cv_video, scene

from wildlife import stage2


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    return videofactory.clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="module")
def video_run(clips, tmp_path_factory) -> Path:
    """Photos and videos (three codecs, one cut, one without time) through the CLI with the motion baseline."""
    root = tmp_path_factory.mktemp("videorun")
    folder = root / "in" / "62c200a9"
    folder.mkdir(parents=True)
    for photo in sorted((SAMPLE / "photos" / "62c200a9").glob("*.JPG"))[:3]:
        (folder / photo.name).write_bytes(photo.read_bytes())
    av_video(folder / "clip.mp4", when="2021-04-12T06:15:00.000000Z", paint=scene)
    cv_video(folder / "mjpg.avi", "MJPG", paint=scene)
    cv_video(folder / "mp4v.mp4", "mp4v", paint=scene)
    cv_video(folder / "still.avi", "MJPG", paint=lambda n: np.full((H, W, 3), 90, np.uint8))  # nothing moves
    for name in ("cut_mp4", "cut_avi"):
        (folder / clips[name].name).write_bytes(clips[name].read_bytes())
    out = root / "out"
    result = odin("run", "--input", str(root / "in"), "--deployments", str(SAMPLE / "deployments.csv"),
                  "--output", str(out), "--budget", "25", "--detector", "motion", "--weather-provider", "none")
    assert result.returncode == 0, result.stderr
    return out


def test_a_run_with_videos_counts_frames_and_reports_each_video(video_run):
    report = json.loads((video_run / "run_report.json").read_text())
    # 3 photos + 3 frames for each of clip.mp4, mjpg.avi, mp4v.mp4, still.avi, cut.avi (its header says 90
    # frames); the cut MP4 cannot be opened: it counts as 1 when listed, and not once Stage 0 failed it
    assert report["stages"]["GuardBudget"]["photos"] == 3 + 5 * 3 + 1
    assert report["stages"]["CostEstimation"]["photos"] == 3 + 5 * 3
    assert report["stages"]["Stage1Detect"]["video_frames"] == 15
    images = {r["relpath"].rsplit("/", 1)[-1]: r for r in pq.read_table(video_run / "images.parquet").to_pylist()}
    clip = images["clip.mp4"]
    assert (clip["status"], clip["frames_sampled"], clip["frames_failed"]) == ("ok", 3, 0)
    assert clip["timestamp_local"] == datetime(2021, 4, 12, 6, 15) and clip["deployment_id"] == "62c200a9"
    assert clip["top_category"] == "animal" and clip["frames_with_detections"] == [30]
    assert clip["best_frame"] == 30 and clip["n_detections"] >= 1
    cut = images["cut.avi"]
    assert cut["status"] == "ok" and cut["frames_failed"] == 1 and "1 of 3 sampled frames failed" in cut[
        "detection_note"]
    assert images["cut.mp4"]["status"] == "failed"
    dets = [d for d in pq.read_table(video_run / "detections.parquet").to_pylist() if d["photo_id"] == clip["photo_id"]]
    assert dets and {d["frame_number"] for d in dets} == {30}
    assert {d["timestamp"] for d in dets} == {clip["timestamp"] + timedelta(seconds=1)}  # frame 30 at 30 fps
    assert dets[0]["detection_id"].startswith(f"{clip['photo_id']}-f000030-")


def test_megadetector_json_follows_the_video_convention(video_run):
    md = {e["file"]: e for e in json.loads((video_run / "megadetector.json").read_text())["images"]}
    clip = md["62c200a9/clip.mp4"]
    assert clip["frame_rate"] == 30.0
    assert [d["category"] for d in clip["detections"]] == ["1"]  # one canonical detection per category
    assert clip["detections"][0]["frame_number"] == 30
    assert md["62c200a9/cut.mp4"]["detections"] is None and md["62c200a9/cut.mp4"]["failure"]
    frames = json.loads((video_run / "megadetector_frames.json").read_text())["images"]
    names = [e["file"] for e in frames if e["file"].startswith("62c200a9/clip.mp4/")]
    assert names == [f"62c200a9/clip.mp4/frame{n:06d}.jpg" for n in (0, 30, 60)]
    by_name = {e["file"]: e for e in frames}
    assert by_name["62c200a9/clip.mp4/frame000030.jpg"]["detections"][0]["frame_number"] == 30
    assert by_name["62c200a9/clip.mp4/frame000000.jpg"]["detections"] == []
    assert by_name["62c200a9/cut.avi/frame000060.jpg"]["detections"] is None  # past the cut: failed, not empty


def test_camtrap_dp_has_video_mime_types_and_observations_spanning_the_frames(video_run):
    package = video_run / "camtrap-dp"
    media = {r["fileName"]: r for r in csv.DictReader((package / "media.csv").open())}
    assert media["clip.mp4"]["fileMediatype"] == "video/mp4"
    assert media["mjpg.avi"]["fileMediatype"] == "video/x-msvideo"
    obs = [r for r in csv.DictReader((package / "observations.csv").open())
           if r["mediaID"] == media["clip.mp4"]["mediaID"] and r["observationLevel"] == "media"]
    assert len(obs) == 1 and obs[0]["observationType"] == "animal"
    assert (obs[0]["eventStart"], obs[0]["eventEnd"]) == ("2021-04-12T06:15:01+01:00", "2021-04-12T06:15:01+01:00")
    blank = [r for r in csv.DictReader((package / "observations.csv").open())
             if r["mediaID"] == media["still.avi"]["mediaID"] and r["observationLevel"] == "media"]
    assert [r["observationType"] for r in blank] == ["blank"]  # a blank video: the whole of it, 3 seconds
    start, end = (datetime.fromisoformat(blank[0][k]) for k in ("eventStart", "eventEnd"))
    assert end - start == timedelta(seconds=3)
    report = json.loads((video_run / "run_report.json").read_text())
    assert report["camtrap_dp"]["valid"], report["camtrap_dp"]["errors"]


def test_the_report_shows_each_videos_best_frame(video_run):
    page = (video_run / "report.html").read_text()
    section = page.split('<section id="videos">', 1)[1].split("</section>", 1)[0]
    assert "62c200a9/clip.mp4 · frame 30 of 90" in section and "data:image/jpeg;base64," in section


def test_a_videos_frames_get_species_like_photos(tmp_path):
    from tinymodels import COLOUR_LABELS, save_classifier, save_planted_detector  # noqa: PLC0415

    # a 160x120 frame: 640x480 letterboxed, padded to 640x512; one planted animal box in the middle
    det = save_planted_detector(tmp_path / "planted.onnx", [[320, 256, 200, 150, 0.9, 1, 0, 0]])
    clf = save_classifier(tmp_path / "models", "nchw", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    folder = tmp_path / "in" / "62c200a9"
    folder.mkdir(parents=True)
    av_video(folder / "clip.mp4", when="2021-04-12T06:15:00.000000Z", paint=scene)
    out = tmp_path / "out"
    result = odin("run", "--input", str(tmp_path / "in"), "--output", str(out), "--budget", "25",
                  "--detector", str(det), "--classifier", str(clf), "--deployments", str(SAMPLE / "deployments.csv"),
                  "--weather-provider", "none")
    assert result.returncode == 0, result.stderr
    dets = pq.read_table(out / "detections.parquet").to_pylist()
    assert sorted(d["frame_number"] for d in dets) == [0, 30, 60]  # the planted box in every sampled frame
    assert all(d["label"] and d["label_source"].startswith("classifier") and d["classifier"] == "colours test-1"
               for d in dets), dets
    label = {d["frame_number"]: d["label"] for d in dets}
    # each frame's crop was classified on its own pixels: grey at frames 0 and 60, the white "animal" at 30
    assert label[0] == label[60] == COLOUR_LABELS[3] and label[30] != label[0]
    md = json.loads((out / "megadetector.json").read_text())
    (entry,) = md["images"]
    (cid, _), = entry["detections"][0]["classifications"]  # the video's best box, with its species
    assert md["classification_category_descriptions"][cid] in {label[0], label[30]}
    frames = json.loads((out / "megadetector_frames.json").read_text())
    assert frames["classification_categories"] == md["classification_categories"]


def test_a_videos_count_is_the_most_in_one_frame_never_a_sum_over_frames():
    from wildlife import species  # noqa: PLC0415

    t0 = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
    rows = [{"detection_id": f"v-f{f:06d}-{n}", "photo_id": "v", "deployment_id": "d", "timestamp": t0,
             "category": "animal", "conf": 0.9 - 0.1 * n, "bbox_x": 0.1 * n, "bbox_y": 0.1, "bbox_w": 0.1,
             "bbox_h": 0.1, "suspected_static": False, "frame_number": f} for f in (0, 30, 60) for n in range(2)]
    detections = pa.Table.from_pylist(rows, schema=stage2.DETECTION_SCHEMA)
    assert species.per_photo_taxa(detections, 0.2).column("n_detections").to_pylist() == [2]
    assert stage2.per_photo(detections, 0.2).column("n_detections").to_pylist() == [2]


def test_a_run_whose_only_video_cannot_be_read_still_writes_its_frames_file(tmp_path):
    """Regression: with no row in Stage 1's results (the one video failed in Stage 0), WriteOutputs took the
    empty results table for 'no videos' and left out megadetector_frames.json, which a run with videos writes."""
    (tmp_path / "in" / "cam").mkdir(parents=True)
    (tmp_path / "in" / "cam" / "clip.mp4").write_bytes(bytes(range(256)) * 20)
    out = tmp_path / "out"
    result = odin("run", "--input", str(tmp_path / "in"), "--output", str(out), "--budget", "5",
                  "--detector", "motion", "--weather-provider", "none")
    assert result.returncode == 0, result.stderr
    (row,) = pq.read_table(out / "images.parquet").to_pylist()
    assert row["status"] == "failed" and row["reason"]
    frames = json.loads((out / "megadetector_frames.json").read_text())
    assert frames["images"] == []
    created = json.loads((out / "run_report.json").read_text())["stages"]["WriteOutputs"]["files_created"]
    assert any(f.endswith("megadetector_frames.json") for f in created)
