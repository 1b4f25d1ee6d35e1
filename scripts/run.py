#!/usr/bin/env python3
"""Odin's command line from a checkout: the same click app as the installed ``odin`` command
(``wildlife/cli/main.py``), importing this checkout's code whether or not it is installed."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # wildlife/, modules/

from wildlife.cli.main import cli

if __name__ == "__main__":
    cli()
