"""Arrow's allocator in an Odin process: jemalloc (pyarrow's default, mimalloc, keeps the pages of the tables a
stage let go, which the Python rows made next cannot use; see ``wildlife/__init__.py``), unless the environment
names one, which is kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _backend(env_pool: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if env_pool:
        env["ARROW_DEFAULT_MEMORY_POOL"] = env_pool
    env["PYTHONPATH"] = str(ROOT)
    code = "import wildlife.stages, pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_odin_allocates_arrow_memory_with_jemalloc():
    assert _backend(None) == "jemalloc"


def test_a_pool_named_in_the_environment_is_kept():
    assert _backend("mimalloc") == "mimalloc"
