"""Odin's pipeline library: camera-trap photos in, analysis-ready tables out.

All domain logic lives here as plain functions over files and tables; the CLI, the Lambda handlers and the
Batch container are thin adapters over it.
"""

import os
import sys

__version__ = "0.1.0"

# Arrow allocates with jemalloc rather than pyarrow's default, mimalloc, unless the environment names an allocator.
# mimalloc kept the pages of the tables a stage had let go for Arrow alone, where the Python rows made next cannot
# use them: a stage's peak was the tables it had read plus its rows. bench/scale.py, 100k photos, one run each:
# whole run 0.37 GiB (mimalloc), 0.48 (system: Stage 0's workers grew), 0.30 (jemalloc); Stage 2 300 -> 216 MiB,
# WriteOutputs 359 -> 233 MiB. Arrow reads the variable once, when pyarrow is first imported: here, before any
# module of the package imports it; worker processes inherit it. Linux only (where it was measured, and where Batch
# and Lambda run): pyarrow's Windows wheels have no jemalloc, and there Arrow would warn on every run.
# Not set where pyarrow is already imported (a notebook that imported pandas first): it would change nothing here
# and reach only the processes started later.
if sys.platform == "linux" and "pyarrow" not in sys.modules:
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
