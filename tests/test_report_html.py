"""report.html rendered by a real browser (headless Chromium): plots drawn, thumbnails decoded."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium; installed here when missing and possible, else the test is skipped with why."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("headless Chromium is not installed and cannot be installed here (needs root and apt-get)")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                              env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if done.returncode != 0:
            pytest.skip(f"could not install Debian's chromium: {' '.join(cmd)} said {done.stderr[-300:]}")
    found = shutil.which("chromium")
    if not found:
        pytest.skip("Debian's chromium installed but no chromium binary on PATH")
    return found


def test_report_renders_plots_and_thumbnails(chromium, sample_run: Path, tmp_path):
    page = (sample_run / "report.html").resolve()
    args = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*args, "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    body = re.search(r"<body[^>]*>", dom)
    assert body, dom[:500]
    assert 'data-plots="3"' in body.group(0)
    assert 'data-thumbs-loaded="1"' in body.group(0)  # the heron's thumbnail decoded in the browser
    for plot in ("activity-by-hour", "detections-per-deployment", "events-timeline"):
        assert f'id="{plot}"' in dom
    assert "<rect" in dom and "<circle" in dom  # bars and event marks were drawn
    for table in ("weather-at-events", "estimate-vs-measured"):
        assert f'id="{table}"' in dom
    shot = tmp_path / "report.png"
    subprocess.run([*args, "--window-size=1200,2000", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000  # a real page, not a blank one


def test_report_is_self_contained(sample_run: Path):
    text = (sample_run / "report.html").read_text()
    assert not re.search(r"""(src|href)=["']https?://""", text)  # nothing fetched from the network
    assert "data:image/jpeg;base64," in text
