"""Odin's infrastructure, one construct per concern; ``main.py`` only wires them together."""
