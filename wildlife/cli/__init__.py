"""Odin's command line (the ``odin`` command, also ``python scripts/run.py``): ``main`` holds the click app,
``common`` what its commands share (exit codes, how errors are shown), ``stack`` the commands that drive a
deployed stack."""
