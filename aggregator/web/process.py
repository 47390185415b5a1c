"""The app of each of `serve`'s web processes, as granian starts it (`FACTORY`): an
`Aggregator` of its own, opened from the config file `serve` names in $AGGREGATOR_CONFIG
and closed when the process stops."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from ..config import load_settings
from ..core import Aggregator
from ..errors import AggregatorError
from . import create_app
from .files import WebApp

FACTORY = "aggregator.web.process:create_app_from_config"


@asynccontextmanager
async def _closing(app: Starlette) -> AsyncIterator[None]:
    yield
    app.state.aggregator.close()


def create_app_from_config() -> WebApp:
    """The app of one web process, from the config in $AGGREGATOR_CONFIG."""
    try:
        agg = Aggregator(load_settings())
    except AggregatorError as e:  # one line, as from the command itself
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    return create_app(agg, lifespan=_closing)
