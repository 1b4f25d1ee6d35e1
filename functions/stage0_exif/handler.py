"""Lambda Stage0Exif: runs wildlife.stages.stage0_exif (wildlife.graph.LAMBDAS)."""

from wildlife.aws import handler_for

handler = handler_for(__name__)
