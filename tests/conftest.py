from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
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
    kwargs.setdefault("cwd", ROOT)
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "run.py"), *args],
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def debian_binary(package: str, *names: str) -> str:
    """The path of a program (the first of ``names`` on PATH) that Debian's ``package`` provides, installed with
    apt-get when missing and possible (root); else the calling test is skipped, saying why."""
    found = next(filter(None, map(shutil.which, names)), None)
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip(f"{names[0]} is not installed and cannot be installed here (Debian's {package} needs root "
                    "and apt-get)")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                              env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if done.returncode != 0:
            pytest.skip(f"could not install Debian's {package}: {' '.join(cmd)} said {done.stderr[-300:]}")
    found = next(filter(None, map(shutil.which, names)), None)
    if not found:
        pytest.skip(f"Debian's {package} installed but no {' or '.join(names)} on PATH")
    return found


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory) -> Path:
    """The bundled sample photos through the whole pipeline, once per test session."""
    out = tmp_path_factory.mktemp("sample") / "out"
    result = odin("run", "--input", str(SAMPLE / "photos"), "--deployments", str(SAMPLE / "deployments.csv"),
                  "--output", str(out), "--budget", "25")
    assert result.returncode == 0, result.stderr
    return out


BUCKET = "odin-test-data"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_env():
    server = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or shutil.which("moto_server")
    if server is None:
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    for attempt in range(3):  # the free port can be taken between finding it and the server binding it
        port = _free_port()
        proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        env = dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="testing",
                   AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="eu-north-1")
        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="eu-north-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        deadline = time.monotonic() + 30
        while proc.poll() is None:  # an exited server lost the port (to whatever answers there now): next port
            try:
                client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-north-1"})
                break
            except Exception:
                if time.monotonic() > deadline:
                    proc.kill()
                    raise
                time.sleep(0.2)
        if proc.poll() is None:
            break
        if attempt == 2:
            raise RuntimeError(f"moto_server exited with {proc.returncode} on three free ports in a row")
    yield env, client
    proc.terminate()
    proc.wait(timeout=10)


