"""Lambda WeatherEnrichment: runs wildlife.stages.weather_enrichment (wildlife.graph.LAMBDAS)."""

from wildlife.aws import handler_for

handler = handler_for(__name__)
