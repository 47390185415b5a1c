"""Event-week feed aggregator: contributor blogs in, one combined feed, page and digest out."""

__version__ = "0.1.0"
