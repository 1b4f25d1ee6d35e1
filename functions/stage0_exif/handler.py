"""Lambda Stage0Exif: runs wildlife.stages.stage0_exif (wildlife.graph.LAMBDAS)."""

from runtimes.lambda_adapter import handler_for

handler = handler_for(__name__)
