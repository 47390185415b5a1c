"""Typer without pydantic at start-up.

typer 0.29 checks an option's value with a pydantic validator that it builds the first
time the option is processed, also for an option that was not given (`--help` on every
command, `--config` when it is not passed), whose value, None, it then hands back as it
is. Building one imports pydantic: ~40 ms of every command's start, more than all of our
own modules. `install` makes typer hand back a value not given without building the
validator, and turns a path given as text into a Path and runs typer's own path checks
on it, as the validator would; every other value goes through typer's validator as
before. With another typer version than the one whose internals this relies on it
changes nothing (and tests/test_startup.py fails, to say so). Importing this module
installs it, as `cli.py` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

#: the typer whose internals this relies on
TYPER_VERSION = "0.29."


def install() -> None:
    from typer import core

    if not typer.__version__.startswith(TYPER_VERSION) or hasattr(core, "_aggregator_lazy"):
        return
    from typer._param_types import coerce_cli_path

    build = core._TyperParameter.get_runtime_param

    class Deferred:
        """An option's coercion, built only for a value that needs it."""

        def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
            single = not (param.multiple or param.nargs == -1)
            if value is None and single:
                return None  # what typer's RuntimeParam.coerce answers, before validating
            kind, info = param.type_descriptor.annotation, param.type_descriptor.parameter_info
            if single and type(value) is str and kind is Path and info.path_type is None:
                path = Path(value)
                if str(path) == value:  # so the errors name the path as it was given
                    # as typer's validator does: Path(text) (with pydantic), then its path checks
                    return coerce_cli_path(path, info, path_type=Path, param=param, ctx=ctx)
            return build(param).coerce(value, param=param, ctx=ctx)

    deferred = Deferred()

    def get_runtime_param(self: Any) -> Any:
        return deferred if self._runtime_param is None else self._runtime_param

    core._TyperParameter.get_runtime_param = get_runtime_param  # type: ignore[method-assign]
    core._aggregator_lazy = True  # type: ignore[attr-defined]


install()
