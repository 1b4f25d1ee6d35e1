from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
sys.path.insert(0, str(Path(__file__).parent))  # photofactory

os.environ.setdefault("ODIN_NO_PROGRESS", "1")
# No network in tests: weather providers point at a closed local port unless a test serves fixtures,
# and the weather cache lives in a throwaway folder, not the user's.
os.environ["ODIN_OPEN_METEO_URL"] = "http://127.0.0.1:9/v1/archive"
os.environ["ODIN_FROST_URL"] = "http://127.0.0.1:9"
os.environ["ODIN_MODELS"] = tempfile.mkdtemp(prefix="odin-models-")  # never the user's model cache
os.environ.setdefault("ODIN_WEATHER_CACHE", os.path.join(tempfile.mkdtemp(prefix="odin-weather-"), "cache"))


def odin(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run the CLI as a user does, in a subprocess."""
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run.py"), *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kwargs,
    )


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory) -> Path:
    """The bundled sample photos through the whole pipeline, once per test session."""
    out = tmp_path_factory.mktemp("sample") / "out"
    result = odin("run", "--input", str(SAMPLE / "photos"), "--deployments", str(SAMPLE / "deployments.csv"),
                  "--output", str(out), "--budget", "25")
    assert result.returncode == 0, result.stderr
    return out
