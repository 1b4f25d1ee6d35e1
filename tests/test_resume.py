"""Resuming and sharing an output folder: a changed input is seen, one run at a time writes, an unwritable
output is refused before any work, and downloads never write outside the folder they were given."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import photofactory as pf
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import BUCKET, ROOT, odin

from modules import cloud
from wildlife import runlock, stage0


def _photos(root: Path, names: list[str]) -> None:
    bg = pf.scene(160, 120)
    for i, name in enumerate(names):
        pf.write_photo(root / name, bg, when=datetime(2024, 5, 1, 6) + timedelta(minutes=i))


def _args(photos: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--input", str(photos), "--output", str(out), "--budget", "5", "--detector", "motion",
            "--weather-provider", "none", *extra]


def test_resume_processes_files_added_and_marks_files_that_vanished(tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    _photos(photos, [f"cam/IMG_{i:04d}.JPG" for i in range(4)])
    first = odin(*_args(photos, out), timeout=120)
    assert first.returncode == 0, first.stderr
    _photos(photos, ["cam/IMG_0100.JPG", "newcam/IMG_0001.JPG"])
    (photos / "cam" / "IMG_0002.JPG").unlink()
    resumed = odin(*_args(photos, out, "--resume"), timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "2 file(s) added" in resumed.stderr and "1 vanished" in resumed.stderr
    images = {r["relpath"]: r for r in pq.read_table(out / "images.parquet").to_pylist()}
    assert len(images) == 6  # every file ever listed, exactly once
    assert images["cam/IMG_0100.JPG"]["status"] == images["newcam/IMG_0001.JPG"]["status"] == "ok"
    assert images["newcam/IMG_0001.JPG"]["deployment_id"] == "newcam"  # through every stage
    assert images["cam/IMG_0002.JPG"]["status"] == "failed"
    assert "vanished from --input" in images["cam/IMG_0002.JPG"]["reason"]
    assert {images[f"cam/IMG_{i:04d}.JPG"]["status"] for i in (0, 1, 3)} == {"ok"}


def test_a_run_stopped_after_listing_reads_the_photos_added_before_resume(tmp_path):
    photos, out, table = tmp_path / "photos", tmp_path / "out", tmp_path / "deployments.csv"
    _photos(photos, [f"cam/IMG_{i:04d}.JPG" for i in range(3)])
    table.write_text("deploymentID,timezone\ncam,Not/AZone\n")  # found wrong by Stage 0, after the listing
    stopped = odin(*_args(photos, out, "--deployments", str(table)), timeout=120)
    assert stopped.returncode != 0 and "Not/AZone" in stopped.stderr
    table.write_text("deploymentID,timezone\ncam,Europe/Copenhagen\n")
    _photos(photos, ["cam/IMG_0300.JPG"])
    resumed = odin(*_args(photos, out, "--deployments", str(table), "--resume"), timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    images = pq.read_table(out / "images.parquet").to_pylist()
    assert sorted(r["relpath"] for r in images if r["status"] == "ok") == [
        "cam/IMG_0000.JPG", "cam/IMG_0001.JPG", "cam/IMG_0002.JPG", "cam/IMG_0300.JPG"]
    assert len(images) == 4


def test_changed_input_keeps_the_max_images_cap():
    def row(rel: str, status: str = "pending") -> dict:
        return {"photo_id": stage0.photo_id(rel), "relpath": rel, "uri": rel, "uri_raw": None, "size": 1,
                "mtime": 0.0, "status": status, "reason": None if status == "pending" else "beyond --max-images 2"}

    table = lambda rows: pa.Table.from_pylist(rows, schema=stage0.MANIFEST_SCHEMA)  # noqa: E731
    stored = table([row("a.jpg"), row("b.jpg"), row("c.jpg", "skipped")])
    fresh = table([row("a.jpg"), row("b.jpg"), row("c.jpg"), row("d.jpg")])
    merged, added, vanished = stage0.changed_input(stored, fresh, 2)
    assert added == ["d.jpg"] and vanished == []
    assert [r["status"] for r in merged.to_pylist()] == ["pending", "pending", "skipped", "skipped"]


def test_a_second_run_into_the_same_output_is_refused_naming_the_holder(tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    _photos(photos, ["cam/IMG_0001.JPG"])
    with runlock.output_lock(str(out)):  # a run at work in this folder
        second = odin(*_args(photos, out), timeout=120)
    assert second.returncode == 2, second.stderr
    assert "in use by another run" in second.stderr
    assert f"process {os.getpid()} on {socket.gethostname()}" in second.stderr
    assert not (out / "_run" / "state.json").exists()  # it did none of the work
    after = odin(*_args(photos, out), timeout=120)  # the lock is gone with its holder
    assert after.returncode == 0, after.stderr


def test_a_killed_run_does_not_leave_the_output_locked(tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    _photos(photos, ["cam/IMG_0001.JPG"])
    killed = subprocess.run(
        [sys.executable, "-c", "import os, signal, sys; from wildlife import runlock\n"
         f"with runlock.output_lock({str(out)!r}): os.kill(os.getpid(), signal.SIGKILL)"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True)
    assert killed.returncode == -9
    assert (out / "_run" / "lock").exists()
    result = odin(*_args(photos, out), timeout=120)
    assert result.returncode == 0, result.stderr


def test_an_s3_output_is_locked_too(s3_env, monkeypatch):
    env, client = s3_env
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, env[name])
    out = f"s3://{BUCKET}/runs/locked"
    with runlock.output_lock(out), pytest.raises(runlock.OutputBusy, match=f"process {os.getpid()}"), \
            runlock.output_lock(out):
        pass
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix="runs/locked/").get("Contents", [])
    assert "runs/locked/_run/lock" not in {o["Key"] for o in listed}  # released
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = {"pid": int(gone.stdout), "host": socket.gethostname(), "started": "2026-01-01T00:00:00+00:00"}
    client.put_object(Bucket=BUCKET, Key="runs/locked/_run/lock", Body=json.dumps(stale).encode())
    with runlock.output_lock(out):  # its holder on this host is gone: taken over
        pass


def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    photos = tmp_path / "photos"
    _photos(photos, ["cam/IMG_0001.JPG"])
    (tmp_path / "a-file").write_text("not a folder")
    result = odin(*_args(photos, tmp_path / "a-file" / "out"), timeout=120)
    assert result.returncode == 2, result.stderr
    assert "cannot be written" in result.stderr
    assert "state is saved" not in result.stderr and "GuardBudget" not in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_is_refused_before_any_work(tmp_path):
    photos, locked = tmp_path / "photos", tmp_path / "locked"
    _photos(photos, ["cam/IMG_0001.JPG"])
    locked.mkdir()
    locked.chmod(0o555)
    result = odin(*_args(photos, locked / "out"), timeout=120)
    assert result.returncode == 2, result.stderr
    assert "cannot be written" in result.stderr and "state is saved" not in result.stderr


def test_download_never_writes_outside_the_folder(tmp_path, s3_env):
    _, s3 = s3_env
    run = "runs/r1"
    keys = {f"{run}/images.parquet": b"ok", f"{run}/camtrap-dp/datapackage.json": b"ok",
            f"{run}/../../../escaped.txt": b"bad", f"{run}/sub/../../../escaped2.txt": b"bad",
            f"{run}//abs.txt": b"bad", f"{run}/_run/state.json": b"work"}
    for key, body in keys.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=run)["Contents"]}
    assert listed == set(keys)  # the store keeps the names as given
    folder = tmp_path / "a" / "b" / "dl"
    warnings: list[str] = []
    got = cloud.download(s3, f"s3://{BUCKET}/{run}", folder, warn=warnings.append)
    assert sorted(p.relative_to(folder).as_posix() for p in got) == ["camtrap-dp/datapackage.json", "images.parquet"]
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["a/b/dl/camtrap-dp/datapackage.json", "a/b/dl/images.parquet"]
    assert len(warnings) == 3 and all("outside" in w for w in warnings)


def test_download_does_not_follow_a_link_out_of_the_folder(tmp_path, s3_env):
    _, s3 = s3_env
    s3.put_object(Bucket=BUCKET, Key="runs/r2/out/x.parquet", Body=b"x")
    folder, elsewhere = tmp_path / "dl", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, folder / "out")
    got = cloud.download(s3, f"s3://{BUCKET}/runs/r2", folder, warn=lambda m: None)
    assert got == [] and not (elsewhere / "x.parquet").exists()
