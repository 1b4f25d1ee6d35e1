"""Where Odin's library runs in the cloud: the Lambda adapter (``functions/*/handler.py`` sit over it) and the
detector container's Batch entry point. Each turns its runtime's call into the stage ``wildlife`` defines."""
