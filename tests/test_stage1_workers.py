"""Stage 1 on both cores: the motion baseline in worker processes gives the results of one process, photo for
photo, in the same order, a photo that fails to decode included; where processes cannot start, one process."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import photofactory as pf

from wildlife import fs, parallel, stage1, stages
from wildlife.detect.motion import MotionDetector

T0 = datetime(2024, 6, 1, 5, 0, 0)


def _folder(root):
    """Photos from two cameras: bursts of 3 with the animal in a different photo each time, a burst of 14 (longer
    than the detector's block, so it is cut between workers) with the animal in 3 of them, and a lone photo."""
    bg = pf.scene(320, 240, seed=5)
    shots = [(f"cam{b % 2}", T0 + timedelta(minutes=10 * b, seconds=2 * i), i == b % 3)
             for b in range(8) for i in range(3)]
    shots += [("cam0", T0 + timedelta(hours=5, seconds=2 * i), i in (2, 9, 13)) for i in range(14)]
    shots += [("cam1", T0 + timedelta(hours=9), False)]
    for k, (cam, when, animal) in enumerate(shots):
        box = (0.05 + 0.04 * (k % 15), 0.35, 0.18, 0.3)
        pf.write_photo(root / cam / f"IMG_{k:04d}.JPG", pf.with_animal(bg, box) if animal else bg, when=when)
    return root


def _photos(tmp_path):
    """Stage 0 over the folder, then Stage 1's list of photos in sequence order; one photo emptied since."""
    state = {"params": {"input_uri": str(_folder(tmp_path / "in")), "output_uri": str(tmp_path / "out"),
                        "budget_dkk": 5.0, "use_spot": True, "target": "local", "detector": "motion"}}
    ctx = stages.Context()
    state["GuardBudget"] = stages.guard_budget(state, ctx)
    media = fs.read_table(stages.stage0_exif(state, ctx)["media_uri"])
    photos = stage1.photos_to_detect(media, gap_s=60)
    with open(photos[20]["uri"], "wb"):  # emptied after Stage 0: Stage 1 must fail it alone, with the reason
        pass
    return photos


class NotingDetector(MotionDetector):
    """The motion baseline writing down which process detects (a worker starts clean: no monkeypatch there)."""

    def __init__(self, pids, **kwargs):
        super().__init__(**kwargs)
        self.pids = pids

    def detect(self, batch):
        with open(self.pids, "a") as f:
            f.write(f"{os.getpid()}\n")
        return super().detect(batch)


def _detect(photos, folder, monkeypatch, workers: int):
    monkeypatch.setenv(parallel.WORKERS_ENV, str(workers))
    detector = MotionDetector(block=4, margin=2)
    return stage1.detect(photos, detector, str(folder), every=12)[0]


def test_motion_on_worker_processes_gives_the_results_of_one_process(tmp_path, monkeypatch):
    photos = _photos(tmp_path)
    monkeypatch.setattr(parallel, "MIN_ITEMS", 1)
    one = _detect(photos, tmp_path / "one", monkeypatch, 1).to_pylist()

    pids = tmp_path / "pids"
    monkeypatch.setenv(parallel.WORKERS_ENV, "2")
    two = stage1.detect(photos, NotingDetector(pids, block=4, margin=2), str(tmp_path / "two"), every=12)[0]
    two = two.to_pylist()
    ran_in = set(pids.read_text().split())
    assert len(ran_in) == 2 and str(os.getpid()) not in ran_in  # both workers detected, the parent none

    assert [r["photo_id"] for r in one] == [p["photo_id"] for p in photos]  # every photo once, in order
    assert two == one
    with_animal = [i for i, r in enumerate(two) if r["detections"]]
    assert len(with_animal) >= 10  # the comparison has something to tell apart
    failed = [r for r in two if r["failure"]]
    assert [(r["photo_id"], r["failure"]) for r in failed] == [(photos[20]["photo_id"], "empty file (0 bytes)")]
    assert any(r["note"] and "alone" in r["note"] for r in two)

    def no_shm(*args, **kwargs):  # AWS Lambda: no /dev/shm for the pool's locks
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", no_shm)  # then it all runs in this process
    assert _detect(photos, tmp_path / "lambda", monkeypatch, 2).to_pylist() == one



def _environment_of(names):
    return [os.environ.get(name) for name in names]


def test_workers_see_the_environment_of_the_run_that_started_them(monkeypatch):
    """Regression: the fork server kept the environment of the first run in a process, so a second run pointed
    at another endpoint (a notebook, a test session) had its workers still reading the first."""
    monkeypatch.setenv(parallel.WORKERS_ENV, "2")
    monkeypatch.setattr(parallel, "MIN_ITEMS", 1)
    for endpoint in ("http://first:4566", "http://second:4566"):
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        with parallel.chunk_mapper(_environment_of, 2) as run:
            assert run(["AWS_ENDPOINT_URL"] * 2) == [endpoint, endpoint]
