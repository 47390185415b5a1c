"""The long-running commands, `run` and `serve`, and `demo`. Registered on the app
`cli` makes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from .cli import aggregator, app, friendly, say, state
from .config import resolve_config_path


@app.command()
@friendly
def run() -> None:
    """The worker: poll every interval (then publish), send the digest daily at send_at.

    Stops cleanly on SIGINT/SIGTERM after the job in progress.
    """
    from .worker import run as run_worker

    logging.getLogger("aggregator").setLevel(logging.INFO)
    with aggregator() as agg:
        run_worker(agg)


@app.command()
@friendly
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    with_worker: Annotated[
        bool, typer.Option("--with-worker", help="Also poll and send digests, as `run` does.")
    ] = False,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log a line for each request (behind a proxy that logs them, turn it off).",
        ),
    ] = True,
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            help="Web processes sharing the port: one per core answers the most requests. "
            "This process watches them (starting again one that dies) and runs the worker.",
        ),
    ] = 1,
) -> None:
    """The web app: posts, subscribe/unsubscribe, register a blog, organiser dashboard."""
    from .worker import serve as serve_app

    logging.getLogger("aggregator").setLevel(logging.INFO)
    with aggregator() as agg:
        config = resolve_config_path(state.config).resolve()
        serve_app(
            agg,
            config,
            host,
            port,
            with_worker=with_worker,
            access_log=access_log,
            processes=processes,
        )


@app.command()
@friendly
def demo(
    output_dir: Annotated[
        Path,
        typer.Option(help="Where the demo writes its outputs (emptied first)."),
    ] = Path("output/demo"),
) -> None:
    """Run the whole pipeline offline on bundled sample blogs served on loopback."""
    from .demo import run_demo

    report = run_demo(output_dir, echo=lambda line: say(line))
    for path in report.paths:
        say(f"  {path}")
