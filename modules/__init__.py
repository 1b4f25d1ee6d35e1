"""Odin's infrastructure, one construct per concern (``main.py`` only wires them together), and operating the
deployed stack: Terraform (``terraform``), its outputs, profiles, transfers and cost (``cloud``), and this host
standing in for Lambda and Batch on the emulator (``emulated``). This file imports nothing, so the CLI reaches
``modules.cloud`` without CDK Terrain installed."""
