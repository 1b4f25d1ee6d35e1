"""Odin's pipeline library: camera-trap photos in, analysis-ready tables out.

All domain logic lives here as plain functions over files and tables; the CLI, the Lambda handlers and the
Batch container are thin adapters over it.
"""

__version__ = "0.1.0"
