"""Listing the input: nothing a folder holds (links, loops, pipes, system files, odd names, the run's own
output) can hang a run, pull in files from elsewhere, or make two files one."""

from __future__ import annotations

import os
import signal
import socket
from datetime import datetime, timedelta
from pathlib import Path

import photofactory as pf
import pyarrow.parquet as pq
import pytest
from conftest import odin

from wildlife import fs, stage0


class Hung(Exception):
    """Not an OSError, so no code under test can take it for a failed read."""


@pytest.fixture
def no_hang():
    """Turn a hang (the bug these tests guard against) into a failure instead of a stuck test session."""

    def stuck(signum, frame):
        raise Hung("listing or reading hung")

    previous = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _photos(root: Path, names: list[str]) -> None:
    bg = pf.scene(160, 120)
    for i, name in enumerate(names):
        pf.write_photo(root / name, bg, when=datetime(2024, 5, 1, 6) + timedelta(minutes=i))


def _rows(root: Path, **kwargs) -> dict[str, dict]:
    table = stage0.scan(str(root), None, **kwargs)
    rows = {r["relpath"]: r for r in table.to_pylist()}
    assert len(rows) == table.num_rows  # never the same relpath twice
    return rows


def test_links_to_the_folder_itself_are_listed_once_and_not_followed(tmp_path, no_hang):
    _photos(tmp_path, ["cam/IMG_0001.JPG"])
    os.symlink(".", tmp_path / "again")
    os.symlink("..", tmp_path / "cam" / "up")  # two loops: listing them used to never finish
    rows = _rows(tmp_path)
    assert set(rows) == {"again", "cam/IMG_0001.JPG", "cam/up"}
    assert rows["cam/IMG_0001.JPG"]["status"] == "pending"
    assert rows["again"]["status"] == "skipped" and "not followed" in rows["again"]["reason"]


def test_follow_links_never_goes_round_a_loop_and_reads_each_file_once(tmp_path, no_hang):
    _photos(tmp_path, ["real/IMG_0001.JPG", "real/IMG_0002.JPG"])
    os.symlink("real", tmp_path / "alias")
    os.symlink("..", tmp_path / "real" / "up")
    os.symlink(".", tmp_path / "again")
    rows = _rows(tmp_path, follow_links=True)
    pending = sorted(p for p, r in rows.items() if r["status"] == "pending")
    assert pending == ["real/IMG_0001.JPG", "real/IMG_0002.JPG"]  # read under their real path only
    assert "same file as real/IMG_0001.JPG" in rows["alias/IMG_0001.JPG"]["reason"]
    assert "loop" in rows["again"]["reason"] and "loop" in rows["real/up"]["reason"]
    assert "loop" in rows["alias/up"]["reason"]
    assert all(r["status"] == "skipped" for p, r in rows.items() if p not in pending)


def test_links_out_of_the_input_are_skipped_and_never_read(tmp_path, no_hang):
    inside, outside = tmp_path / "in", tmp_path / "elsewhere"
    _photos(inside, ["cam/IMG_0001.JPG"])
    _photos(outside, ["secret/IMG_9999.JPG"])
    os.symlink("/", inside / "root")
    os.symlink(outside / "secret", inside / "cam" / "secret")
    os.symlink(outside / "secret" / "IMG_9999.JPG", inside / "cam" / "borrowed.jpg")
    for follow in (False, True):
        rows = _rows(inside, follow_links=follow)
        assert set(rows) == {"cam/IMG_0001.JPG", "cam/borrowed.jpg", "cam/secret", "root"}
        for name in ("cam/borrowed.jpg", "cam/secret", "root"):
            assert rows[name]["status"] == "skipped"
            assert "outside --input" in rows[name]["reason"], rows[name]


def test_a_link_to_a_file_inside_is_read_once_under_its_real_path(tmp_path):
    _photos(tmp_path, ["cam/IMG_0001.JPG"])
    os.symlink("cam/IMG_0001.JPG", tmp_path / "favourite.jpg")
    rows = _rows(tmp_path)
    assert rows["cam/IMG_0001.JPG"]["status"] == "pending"
    assert rows["favourite.jpg"]["status"] == "skipped"
    assert "read once, as cam/IMG_0001.JPG" in rows["favourite.jpg"]["reason"]


def test_dangling_links_and_special_files_are_skipped_with_a_reason(tmp_path, no_hang):
    _photos(tmp_path, ["cam/IMG_0001.JPG"])
    os.symlink(tmp_path / "gone.jpg", tmp_path / "cam" / "dangling.jpg")
    os.mkfifo(tmp_path / "cam" / "pipe.jpg")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "cam" / "sock.jpg"))
    try:
        rows = _rows(tmp_path)
    finally:
        sock.close()
    assert {p: r["status"] for p, r in rows.items()} == {
        "cam/IMG_0001.JPG": "pending", "cam/dangling.jpg": "skipped", "cam/pipe.jpg": "skipped",
        "cam/sock.jpg": "skipped"}
    assert "dangling" in rows["cam/dangling.jpg"]["reason"]
    assert "FIFO" in rows["cam/pipe.jpg"]["reason"]
    assert "socket" in rows["cam/sock.jpg"]["reason"]


def test_a_fifo_swapped_in_after_listing_fails_its_row_instead_of_hanging(tmp_path, no_hang):
    _photos(tmp_path, ["cam/IMG_0001.JPG", "cam/IMG_0002.JPG"])
    pending = [r for r in stage0.scan(str(tmp_path), None).to_pylist() if r["status"] == "pending"]
    swapped = tmp_path / "cam" / "IMG_0002.JPG"
    swapped.unlink()
    os.mkfifo(swapped)
    writer = os.open(swapped, os.O_RDWR)  # a writer that never writes: a blocking read would wait forever
    try:
        rows = {r["relpath"]: r for r in stage0.read_headers(pending, {}, 250.0)}
    finally:
        os.close(writer)
    assert rows["cam/IMG_0001.JPG"]["status"] == "ok"
    assert rows["cam/IMG_0002.JPG"]["status"] == "failed"
    assert "not a regular file" in rows["cam/IMG_0002.JPG"]["reason"]


def test_open_read_refuses_a_fifo_at_once(tmp_path, no_hang):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(OSError, match="FIFO"):
        fs.open_read(str(tmp_path / "pipe"))


def test_system_files_are_skipped_not_failed(tmp_path):
    _photos(tmp_path, ["cam/IMG_0001.JPG"])
    (tmp_path / "cam" / "._IMG_0001.JPG").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 80)  # AppleDouble header
    (tmp_path / "cam" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (tmp_path / "cam" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    rows = _rows(tmp_path)
    for name in ("cam/._IMG_0001.JPG", "cam/.DS_Store", "cam/Thumbs.db"):
        assert rows[name]["status"] == "skipped", name
    assert "AppleDouble" in rows["cam/._IMG_0001.JPG"]["reason"]


def test_every_jpeg_extension_is_a_photo(tmp_path):
    names = ["a.jpg", "b.JPEG", "c.jpe", "d.JFIF", "e.Jpe"]
    _photos(tmp_path, names)
    assert {p: r["status"] for p, r in _rows(tmp_path).items()} == dict.fromkeys(names, "pending")


def test_a_byte_name_and_its_escaped_spelling_stay_two_files(tmp_path):
    _photos(tmp_path, ["cam/IMG_0001.JPG"])
    data = (tmp_path / "cam" / "IMG_0001.JPG").read_bytes()
    with open(os.fsencode(tmp_path / "cam") + b"/r\xe5dyr.jpg", "wb") as f:  # Latin-1 å, not UTF-8
        f.write(data)
    (tmp_path / "cam" / "r\\xe5dyr.jpg").write_bytes(data)  # a name spelled with a real backslash
    rows = list(_rows(tmp_path).values())
    assert len({r["relpath"] for r in rows}) == len({r["uri"] for r in rows}) == len({r["photo_id"] for r in rows}) == 3
    # each row opens its own file
    opened = {stage0.openable(r) for r in rows}
    assert all(os.path.exists(p) for p in opened) and len(opened) == 3
    # ordinary names keep their identifiers and text
    ordinary = next(r for r in rows if r["relpath"] == "cam/IMG_0001.JPG")
    assert ordinary["photo_id"] == "e412fbbc8a5a175e" and ordinary["uri_raw"] is None


def test_a_run_reads_the_whole_zoo_once_and_accounts_for_every_file(tmp_path, no_hang):
    photos, out = tmp_path / "photos", tmp_path / "photos" / "results"  # --output inside --input
    _photos(photos, ["cam/IMG_0001.JPG", "cam/IMG_0002.jpe", "cam/IMG_0003.jfif"])
    os.symlink(".", photos / "again")
    os.symlink("/", photos / "everything")
    os.symlink("IMG_0001.JPG", photos / "cam" / "same.jpg")
    os.mkfifo(photos / "cam" / "pipe.jpg")
    (photos / "cam" / "._IMG_0001.JPG").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 80)
    args = ["run", "--input", str(photos), "--output", str(out), "--budget", "5", "--detector", "motion",
            "--weather-provider", "none"]
    result = odin(*args, timeout=120)
    assert result.returncode == 0, result.stderr
    again = odin(*args, "--resume", timeout=120)  # the second listing sees the output folder: still not input
    assert again.returncode == 0, again.stderr
    images = pq.read_table(out / "images.parquet").to_pylist()
    status = {r["relpath"]: r["status"] for r in images}
    assert len(images) == len(status)
    assert status == {"again": "skipped", "everything": "skipped", "cam/IMG_0001.JPG": "ok", "cam/IMG_0002.jpe": "ok",
                      "cam/IMG_0003.jfif": "ok", "cam/same.jpg": "skipped", "cam/pipe.jpg": "skipped",
                      "cam/._IMG_0001.JPG": "skipped"}
    assert all(r["reason"] for r in images if r["status"] != "ok")


def test_follow_links_is_a_run_option(tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    _photos(photos, ["real/IMG_0001.JPG"])
    os.symlink("real", photos / "alias")
    result = odin("run", "--input", str(photos), "--output", str(out), "--budget", "5", "--detector", "motion",
                  "--weather-provider", "none", "--follow-links", timeout=120)
    assert result.returncode == 0, result.stderr
    status = {r["relpath"]: (r["status"], r["reason"]) for r in pq.read_table(out / "images.parquet").to_pylist()}
    assert status["real/IMG_0001.JPG"] == ("ok", None)
    assert status["alias/IMG_0001.JPG"][0] == "skipped"
