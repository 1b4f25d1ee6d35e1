"""Odin's pipeline library: camera-trap photos in, analysis-ready tables out.

All domain logic lives here as plain functions over files and tables; the CLI, the Lambda handlers and the
Batch container are thin adapters over it.
"""

import os

__version__ = "0.1.0"

# Arrow allocates from the system allocator (glibc's malloc) rather than pyarrow's default, mimalloc, unless the
# environment names one. mimalloc keeps the pages of the tables a stage has let go for Arrow's own later use, where
# the Python rows made next cannot use them: a stage's peak was every table it had read plus its rows
# (bench/scale.py at 100k photos, a stage re-run alone: Stage 2 ~300 -> ~235 MiB, WriteOutputs ~340 -> ~280 MiB).
# Arrow reads the variable once, when pyarrow is first imported: here, before any module of the package imports
# it; worker processes inherit it.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
