"""Lambda for the monthly stop (subscribed to the alarm topic, and called monthly to resume); the logic is in
wildlife.monthly_stop."""

from wildlife.monthly_stop import handle_from_environment


def handler(event, context):
    return handle_from_environment(event)
