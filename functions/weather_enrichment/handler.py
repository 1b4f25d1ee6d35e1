"""Lambda WeatherEnrichment: runs wildlife.stages.weather_enrichment (wildlife.graph.LAMBDAS)."""

from runtimes.lambda_adapter import handler_for

handler = handler_for(__name__)
