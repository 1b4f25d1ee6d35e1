"""Videos as media: container metadata, frame sampling and decoding, kill/resume inside a video, the per-video
results and the cost counting frames (a whole run's outputs: test_video_run.py). Every video is made by the
test (``videofactory``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import videofactory
from conftest import SAMPLE, odin
from videofactory import N, av_video

from wildlife import stage0, stage1, stage2, video, video_results
from wildlife.detect import Result
from wildlife.errors import InputError
from wildlife.events import EventRules


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    return videofactory.clips(tmp_path_factory.mktemp("clips"))


def grey(img: np.ndarray) -> float:
    return float(img[:40, :40].mean())  # a corner the "animal" never covers


@pytest.mark.parametrize("name", ["mp4v", "mjpg", "h264"])
def test_the_container_header_gives_duration_rate_count_size_and_codec(clips, name):
    found = video.read_metadata(str(clips[name]), clips[name].name)
    assert (found["fps"], found["frame_count"], found["duration_s"]) == (30.0, 90, 3.0)
    assert (found["width"], found["height"], found["media_type"]) == (160, 120, "video")
    assert found["codec"] == {"mp4v": "mpeg4", "mjpg": "mjpeg", "h264": "h264"}[name]
    assert found["format"] == clips[name].suffix[1:]


@pytest.mark.parametrize(("tags", "expected"), [
    ({"creation_time": "2024-05-01T06:30:00.250000Z"}, ("2024:05:01 06:30:00", "25")),
    ({"creation_time": "Wed May  1 06:30:00 2024"}, ("2024:05:01 06:30:00", None)),  # AVI IDIT's spelling
    ({"date": "2024-05-01 06:30:00"}, ("2024:05:01 06:30:00", None)),
    ({"date": "2024-05-01"}, None),  # a date alone: no time is invented
    ({"creation_time": "1904-01-01T00:00:00.000000Z"}, None),  # QuickTime's zero: not set
    ({"creation_time": "garbage"}, None),
])
def test_container_times_are_read_as_the_cameras_clock_or_not_at_all(tags, expected):
    found = video._time_fields(tags)
    assert (found["datetime_original"], found["subsec_time_original"]) == expected if expected else found == {}


def test_creation_time_and_make_are_read_and_a_video_without_them_has_none(clips):
    found = video.read_metadata(str(clips["mov"]), "h264.mov")  # FFmpeg's MP4 muxer writes no make; MOV does
    assert found["datetime_original"] == "2024:05:01 06:30:00" and found["make"] == "Browning"
    assert video.read_metadata(str(clips["h264"]), "h264.mp4")["datetime_original"] == "2024:05:01 06:30:00"
    assert "datetime_original" not in video.read_metadata(str(clips["mp4v"]), "mp4v.mp4")


def every_frame(path: Path) -> list[np.ndarray]:
    """The reference: every frame, decoded one after the other from the start."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


@pytest.mark.parametrize("name", ["mp4v", "mjpg", "h264"])
def test_the_frame_asked_for_is_the_frame_decoded(clips, name):
    reference = every_frame(clips[name])
    assert len(reference) == N
    for n in (0, 1, 11, 12, 13, 29, 30, 47, 89):  # keyframes every 12 frames (mp4v, h264), every frame (MJPEG)
        with open(clips[name], "rb") as f:
            img = video.read_frame(f, n, 30.0)
        assert np.array_equal(img, reference[n]), n  # seek + decode forward = the same pixels
        assert abs(grey(img) - (20 + 2 * n)) < 5  # and it is frame n the writer wrote (colour conversion shifts it)
    try:  # a video kept open between frames (Stage 1's reader): forwards, backwards, the same frame twice
        for n in (0, 30, 13, 89, 12, 12, 0, 47):
            assert np.array_equal(video.read_frame_at(str(clips[name]), n, 30.0), reference[n]), n
    finally:
        video.release()


class Counting:
    """An open container that counts the frames decoded from it."""

    decoded = 0

    def __init__(self, container):
        self.container = container

    def __getattr__(self, name):
        return getattr(self.container, name)

    def decode(self, *args, **kwargs):
        for f in self.container.decode(*args, **kwargs):
            Counting.decoded += 1
            yield f


@pytest.mark.parametrize(("gop", "most"), [(12, 15), (250, 66)])
def test_sparse_sampling_decodes_from_keyframes_never_the_whole_video(tmp_path, monkeypatch, gop, most):
    path = av_video(tmp_path / f"gop{gop}.mp4", gop=gop)  # 90 frames; keyframes at 0, 12, 24, ... or only at 0
    reference = every_frame(path)
    opened = av.open
    monkeypatch.setattr(av, "open", lambda *a, **k: Counting(opened(*a, **k)))
    Counting.decoded = 0
    try:
        for n in video.sample_frames(30.0, 90, "1s"):  # 0, 30, 60
            assert np.array_equal(video.read_frame_at(str(path), n, 30.0), reference[n])
    finally:
        video.release()
    # keyframes every 12: 0; 24..30; 60 (9, and a few more held back by B-frames). One keyframe only: 0, then on
    # to 30 and on to 60 (61 and a few), never from 0 again for each (93). Decoding every frame: 61 or 90.
    assert Counting.decoded <= most


def test_a_frame_past_the_end_or_in_a_cut_file_is_a_reason_not_an_exception(clips):
    with pytest.raises(video.BadVideo, match="past the video's last decodable frame"):
        video.read_frame(str(clips["mjpg"]), 95, 30.0)
    with pytest.raises(video.BadVideo, match="cannot read the video container"):
        video.read_metadata(str(clips["cut_mp4"]), "cut.mp4")  # the MP4 index (moov) is at the end: cut off
    assert video.read_metadata(str(clips["cut_avi"]), "cut.avi")["frame_count"] == 90  # the header still claims 90
    assert abs(grey(video.read_frame(str(clips["cut_avi"]), 30, 30.0)) - 80) < 1.5
    with pytest.raises(video.BadVideo):
        video.read_frame(str(clips["cut_avi"]), 80, 30.0)


@pytest.mark.parametrize(("spec", "frames"), [
    ("1s", [0, 30, 60]), ("0.5s", [0, 15, 30, 45, 60, 75]), ("30f", [0, 30, 60]), ("7f", list(range(0, 90, 7))),
    ("2.5s", [0, 75]), ("10s", [0]),
])
def test_sampling_every_n_seconds_or_frames(spec, frames):
    assert video.sample_frames(30.0, 90, spec) == frames


def test_sampling_at_a_fractional_frame_rate_rounds_to_the_nearest_frame():
    assert video.sample_frames(29.97, 120, "1s") == [0, 30, 60, 90]
    assert video.sample_frames(29.97, 0, "1s") == []


@pytest.mark.parametrize("spec", ["", "abc", "0s", "-1s", "1.5f", "1 sec", "30", "0f"])
def test_a_bad_sampling_spec_says_how_to_write_one(spec):
    with pytest.raises(InputError, match="not a sampling interval") as info:
        video.parse_sample(spec)
    assert "'1s'" in info.value.hint and "'30f'" in info.value.hint


def test_a_bad_video_sample_stops_the_cli_before_anything_starts(tmp_path):
    result = odin("run", "--input", str(SAMPLE / "videos"), "--output", str(tmp_path / "out"), "--budget", "5",
                  "--video-sample", "every second")
    assert result.returncode == 2, result.stderr
    assert "not a sampling interval" in result.stderr and not (tmp_path / "out").exists()


def test_the_estimate_counts_sampled_frames_not_files(tmp_path):
    result = odin("estimate", "--input", str(SAMPLE / "videos"), "--budget", "5", "--detector", "motion",
                  "--video-sample", "0.5s")
    assert result.returncode == 0, result.stderr
    assert "Estimate for 8 photos" in " ".join((result.stdout + result.stderr).split())  # 4 s at 0.5 s: 8 frames


def _stage0(folder: Path, max_images=None, spec="1s") -> pa.Table:
    manifest = stage0.scan(str(folder), max_images, video_sample=spec)
    pending = [r for r in manifest.to_pylist() if r["status"] == "pending"]
    rows = stage0.read_headers(pending, {}, 100.0) + [dict(r, clock_flags=[]) for r in manifest.to_pylist()
                                                     if r["status"] != "pending"]
    return stage0.finish(rows)


def test_stage0_rows_for_videos_cut_files_and_a_video_without_creation_time(clips, tmp_path):
    for name in ("mp4v", "mjpg", "h264", "cut_mp4"):
        (tmp_path / clips[name].name).write_bytes(clips[name].read_bytes())
    media = {r["relpath"]: r for r in _stage0(tmp_path).to_pylist()}
    h264 = media["h264.mp4"]
    assert (h264["status"], h264["media_type"], h264["timestamp_source"]) == ("ok", "video", "exif+utc_assumed")
    assert h264["timestamp_local"] == datetime(2024, 5, 1, 6, 30)  # the camera's clock, read as a photo's
    assert "no_exif_time" in media["mp4v.mp4"]["clock_flags"] and media["mp4v.mp4"]["status"] == "ok"
    assert media["mjpg.avi"]["codec"] == "mjpeg" and media["mjpg.avi"]["duration_s"] == 3.0
    cut = media["cut.mp4"]
    assert cut["status"] == "failed" and cut["reason"].startswith("cannot read the video container: InvalidDataError")


def test_max_images_counts_a_video_as_its_sampled_frames(clips, tmp_path):
    for name in ("a", "b"):
        (tmp_path / f"{name}.mp4").write_bytes(clips["h264"].read_bytes())  # 3 frames each at 1s
    manifest = {r["relpath"]: r for r in stage0.scan(str(tmp_path), 5, video_sample="1s").to_pylist()}
    assert manifest["a.mp4"]["status"] == "pending"
    assert manifest["b.mp4"]["status"] == "skipped"
    assert "a video counts as its sampled frames: 3" in manifest["b.mp4"]["reason"]
    manifest = {r["relpath"]: r for r in stage0.scan(str(tmp_path), 5, video_sample="1.5s").to_pylist()}
    assert {r["status"] for r in manifest.values()} == {"pending"}  # 2 + 2 frames
    assert video_results.items_to_run(stage0.scan(str(tmp_path), None), "0.5s") == 12
    (tmp_path / "C.MP4").write_bytes(clips["h264"].read_bytes())  # a camera's upper-case name is a video too
    (tmp_path / "clip.mp4.jpg").write_bytes(b"")  # a photo, whatever its name holds
    (tmp_path / "notes.txt").write_text("not media")
    assert video_results.items_to_run(stage0.scan(str(tmp_path), None), "0.5s") == 19  # 3 videos of 6, 1 photo


def test_a_resumed_run_keeps_the_frame_cap_for_files_added_since(clips, tmp_path):
    (tmp_path / "a.mp4").write_bytes(clips["h264"].read_bytes())  # 3 frames at 1s
    stored = stage0.scan(str(tmp_path), 5, video_sample="1s")
    (tmp_path / "b.mp4").write_bytes(clips["h264"].read_bytes())  # 3 more: past 5
    (tmp_path / "c.jpg").write_bytes(next((SAMPLE / "photos" / "62c200a9").glob("*.JPG")).read_bytes())
    manifest, added, _ = stage0.changed_input(stored, stage0.scan(str(tmp_path), None), 5, "1s")
    status = {r["relpath"]: r["status"] for r in manifest.to_pylist()}
    assert added == ["b.mp4", "c.jpg"] and status == {"a.mp4": "pending", "b.mp4": "skipped", "c.jpg": "pending"}


class Recording:
    """A stand-in detector that records what it was asked to run and can stop the run at a chosen item."""

    name, version, context = "recording", "1", 0

    def __init__(self, stop_at: str | None = None):
        self.seen: list[str] = []
        self.stop_at = stop_at

    def chunk_key(self, item):
        return item["item_id"]  # one item per chunk if it could: Stage 1 must still keep a video whole

    def detect(self, batch):
        out = []
        for item in batch:
            if item["item_id"] == self.stop_at:
                raise KeyboardInterrupt("killed")
            self.seen.append(item["item_id"])
            out.append(Result())
        return out


def test_a_run_killed_inside_a_video_redoes_at_most_that_video(clips, tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / f"{name}.avi").write_bytes(clips["mjpg"].read_bytes())
    items = stage1.photos_to_detect(_stage0(tmp_path / "in", spec="0.5s"), 60, video_sample="0.5s")
    assert len(items) == 18 and len({i["item_id"] for i in items}) == 18  # 6 frames per video
    order = list(dict.fromkeys(i["photo_id"] for i in items))
    second = [i["item_id"] for i in items if i["photo_id"] == order[1]]
    parts = str(tmp_path / "parts")
    killed = Recording(stop_at=second[3])  # inside the second video
    with pytest.raises(KeyboardInterrupt):
        stage1.detect(items, killed, parts, every=2)
    resumed_detector = Recording()
    results, resumed = stage1.detect(items, resumed_detector, parts, every=2)
    assert resumed == 6  # the first video, whole
    assert resumed_detector.seen == [i["item_id"] for i in items if i["photo_id"] != order[0]]
    assert results.num_rows == 18 and sorted(results.column("item_id").to_pylist()) == sorted(
        i["item_id"] for i in items)
    for part in sorted((tmp_path / "parts").glob("part-*.parquet")):  # a part holds whole videos only
        table = pq.read_table(part)
        for pid in set(table.column("photo_id").to_pylist()):
            assert table.filter(pa.compute.equal(table.column("photo_id"), pid)).num_rows == 6


def test_frames_fold_into_one_row_per_video():
    rows = [{"photo_id": "v", "sequence_id": "s", "detections": [], "failure": None, "note": None, "assessed": True,
             "item_id": f"v/frame{n:06d}.jpg", "frame_number": n, "frame_time_s": n / 30} for n in (0, 30, 60)]
    rows[2]["failure"] = "frame 60 is past the video's last decodable frame (truncated file?)"
    rows.append({"photo_id": "w", "sequence_id": "t", "detections": [], "failure": "cannot decode frame 0: x",
                 "note": None, "assessed": True, "item_id": "w/frame000000.jpg", "frame_number": 0,
                 "frame_time_s": 0.0})
    table = pa.Table.from_pylist(rows, stage1.RESULT_SCHEMA)
    folded = {r["photo_id"]: r for r in video_results.fold(table).to_pylist()}
    assert folded["v"]["failure"] is None and folded["v"]["note"].startswith("1 of 3 sampled frames failed")
    assert folded["w"]["failure"] == "all 1 sampled frames failed: cannot decode frame 0: x"


def test_events_span_a_video_from_its_start_to_its_end():
    t0 = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
    photos = pa.table({
        "photo_id": ["video", "photo"], "deployment_id": ["d", "d"], "timestamp": [t0, t0 + timedelta(seconds=150)],
        "timestamp_end": [t0 + timedelta(seconds=60), t0 + timedelta(seconds=150)],
        "top_category": ["animal", None], "max_conf": [0.9, None], "n_detections": [1, None],
    })
    ids, events = stage2.group_events(photos, EventRules(event_gap_s=120))
    assert ids.to_pylist()[0] == ids.to_pylist()[1]  # 90 s after the video ended: the same event
    assert events.column("end_time").to_pylist() == [t0 + timedelta(seconds=150)]
    ids, events = stage2.group_events(photos.drop_columns(["timestamp_end"]), EventRules(event_gap_s=120))
    assert ids.to_pylist()[1] is None  # counted from the start (as a photo), 150 s is a new sequence
    one = photos.slice(0, 1)
    assert stage2.group_events(one, EventRules())[1].column("end_time").to_pylist() == [t0 + timedelta(seconds=60)]
