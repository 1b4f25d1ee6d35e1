#!/usr/bin/env python3
"""Start and stop the local AWS emulator: ``python scripts/localstack.py up|down|status``.

Where a Docker engine answers, LocalStack runs from ``conf/localstack/compose.yaml``. Otherwise LocalStack's
core runs on this host, in its own Python 3.13 venv (``build/localstack/venv``, pinned by
``conf/localstack/requirements.txt``), bound to 127.0.0.1:4566, in the background; its PID goes to
``build/localstack/localstack.pid`` and ``down`` stops exactly that process. Both wait until it is ready
(or gone). Step Functions reads its mocked service integrations from ``build/localstack/sfn-mock.json``,
which ``scripts/run.py run --target localstack`` writes before each execution.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / "build" / "localstack"
VENV = HOME / "venv"
PID_FILE = HOME / "localstack.pid"
LOG_FILE = HOME / "localstack.log"
MOCK_CONFIG = HOME / "sfn-mock.json"
REQUIREMENTS = ROOT / "conf" / "localstack" / "requirements.txt"
COMPOSE = ROOT / "conf" / "localstack" / "compose.yaml"
ENDPOINT = "http://127.0.0.1:4566"
NEEDED = ("s3", "iam", "sts", "stepfunctions", "ec2", "sns", "logs", "cloudwatch")


def _ok(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def docker_available() -> bool:
    return os.environ.get("ODIN_LOCALSTACK_DOCKER", "auto") != "no" and shutil.which("docker") is not None \
        and _ok(["docker", "info"])


def python313() -> str:
    """A Python 3.13 interpreter: $LOCALSTACK_PYTHON, python3.13 on PATH, or pyenv's."""
    candidates = [os.environ.get("LOCALSTACK_PYTHON"), shutil.which("python3.13"),
                  *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.13*/bin/python3.13")), reverse=True),
                  "/usr/local/bin/python3.13", "/usr/bin/python3.13"]
    for exe in filter(None, candidates):
        if _ok([exe, "-c", "import sys, venv; assert sys.version_info[:2] == (3, 13)"]):
            return exe
    raise SystemExit("LocalStack's core needs Python 3.13 and none was found. Install it (pyenv install 3.13, "
                     "or your distribution's python3.13) or point LOCALSTACK_PYTHON at one.")


def health() -> dict | None:
    try:
        with urllib.request.urlopen(f"{ENDPOINT}/_localstack/health", timeout=2) as response:
            return json.load(response)
    except OSError:
        return None


def ready() -> bool:
    services = (health() or {}).get("services", {})
    return all(services.get(s) in ("available", "running") for s in NEEDED)


def _wait(condition, what: str, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.5)
    raise SystemExit(f"LocalStack did not {what} within {timeout:.0f} s; see {LOG_FILE}")


def _pid() -> int | None:
    """The recorded process, while it lives and is still LocalStack (a reused PID is not ours)."""
    try:
        pid = int(PID_FILE.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return None
    return pid if b"localstack.runtime.main" in cmdline and state != "Z" else None


def install() -> Path:
    """The venv, made once per requirements file (a stamp holds its hash)."""
    stamp = VENV / ".requirements"
    wanted = REQUIREMENTS.read_text()
    if stamp.is_file() and stamp.read_text() == wanted:
        return VENV / "bin" / "python"
    print(f"installing LocalStack's core into {VENV} (once; about 2 minutes)", flush=True)
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([python313(), "-m", "venv", str(VENV)], check=True)
    pip = subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet",
                          "--disable-pip-version-check", "-r", str(REQUIREMENTS)], capture_output=True, text=True)
    if pip.returncode != 0:
        raise SystemExit(f"installing LocalStack failed:\n{pip.stdout[-2000:]}{pip.stderr[-3000:]}")
    stamp.write_text(wanted)
    return VENV / "bin" / "python"


def up(timeout: float = 120) -> None:
    HOME.mkdir(parents=True, exist_ok=True)
    if not MOCK_CONFIG.exists():
        MOCK_CONFIG.write_text(json.dumps({"StateMachines": {}, "MockedResponses": {}}))
    if ready():
        print(f"LocalStack already answers at {ENDPOINT}")
        return
    if docker_available():
        subprocess.run(["docker", "compose", "-f", str(COMPOSE), "up", "-d", "--wait"], check=True)
    else:
        python = install()
        data = HOME / "data"
        shutil.rmtree(data, ignore_errors=True)  # a fresh emulator: its state is not persisted anyway,
        data.mkdir()                             # so Terraform's state of the last one is void too
        for old in HOME.glob("terraform.tfstate*"):
            old.unlink()
        env = dict(os.environ, GATEWAY_LISTEN="127.0.0.1:4566", GATEWAY_SERVER="hypercorn", DNS_ADDRESS="0",
                   DISABLE_EVENTS="1", SKIP_SSL_CERT_DOWNLOAD="1", FILESYSTEM_ROOT=str(data),
                   SFN_MOCK_CONFIG=str(MOCK_CONFIG), LOCALSTACK_CLI="0")
        with LOG_FILE.open("ab") as log:
            proc = subprocess.Popen([str(python), "-m", "localstack.runtime.main"], env=env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        PID_FILE.write_text(str(proc.pid))
    _wait(ready, "become ready", timeout)
    print(f"LocalStack ready at {ENDPOINT}" + (f" (pid {_pid()})" if _pid() else " (docker)"))


def down(timeout: float = 60) -> None:
    pid = _pid()
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        try:
            _wait(lambda: _pid() is None, "stop", timeout)
        except SystemExit:
            os.kill(pid, signal.SIGKILL)
        PID_FILE.unlink(missing_ok=True)
        print(f"LocalStack (pid {pid}) stopped")
    elif docker_available() and COMPOSE.exists():
        subprocess.run(["docker", "compose", "-f", str(COMPOSE), "down"], check=True)
    else:
        PID_FILE.unlink(missing_ok=True)
        print("LocalStack was not running (no live process recorded)")


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "status"
    if command == "up":
        up()
    elif command == "down":
        down()
    elif command == "status":
        print(json.dumps({"endpoint": ENDPOINT, "ready": ready(), "pid": _pid()}))
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
