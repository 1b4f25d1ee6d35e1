"""Lambda for Stage0Exif; the stage itself is in wildlife.stages."""

from wildlife.aws import handle


def handler(event, context):
    return handle("Stage0Exif", event, context)
