"""The pydantic side of `config`: models made from the settings dataclasses (their keys,
types, defaults, bounds and checks, declared once there), named as they are, so a problem
reads as it always has. Imported only for a file the plain reader leaves to pydantic: one
with a problem, or with values to convert.
"""

from __future__ import annotations

import dataclasses
import types
from typing import TYPE_CHECKING, Annotated, Any, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model

from .config import Settings
from .errors import ConfigError

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

_MODELS: dict[type, type[BaseModel]] = {}


def model_for(cls: type) -> type[BaseModel]:
    """The pydantic model of a settings dataclass (made once)."""
    if cls not in _MODELS:
        fields: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            kind = _model_type(f.type)
            extras: list[Any] = []
            if f.metadata.get("bounds"):
                extras.append(Field(**f.metadata["bounds"]))
            if f.metadata.get("check"):
                extras.append(AfterValidator(f.metadata["check"]))
            if extras:
                kind = Annotated[(kind, *extras)]
            if f.default is not dataclasses.MISSING:
                default: Any = f.default
            elif f.default_factory is not dataclasses.MISSING:
                factory: Any = f.default_factory  # list, or a settings dataclass
                default = Field(default_factory=list if factory is list else model_for(factory))
            else:
                default = ...
            fields[f.name] = (kind, default)
        _MODELS[cls] = create_model(
            cls.__name__, __config__=ConfigDict(extra="forbid", frozen=True), **fields
        )
    return _MODELS[cls]


def _model_type(kind: Any) -> Any:
    """A field's type with the settings dataclasses in it replaced by their models."""
    if dataclasses.is_dataclass(kind):
        return model_for(kind)  # type: ignore[arg-type]
    if get_origin(kind) is list:
        (inner,) = get_args(kind)
        return list[_model_type(inner)]  # type: ignore[misc]
    assert not isinstance(kind, types.UnionType) or not any(
        dataclasses.is_dataclass(k) for k in get_args(kind)
    )
    return kind


def _as_dataclass(cls: Any, values: dict[str, Any]) -> Any:
    """`model_dump()` output back as the settings dataclasses."""
    built = {}
    for f in dataclasses.fields(cls):
        value = values[f.name]
        if dataclasses.is_dataclass(f.type):
            value = _as_dataclass(f.type, value)
        elif get_origin(f.type) is list and dataclasses.is_dataclass(get_args(f.type)[0]):
            value = [_as_dataclass(get_args(f.type)[0], item) for item in value]
        built[f.name] = value
    return cls(**built)


def _describe(error: ErrorDetails) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    if error["type"] == "missing":
        return f"{key}: required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    return f"{key}: {message}"


def validate(data: dict[str, Any], source: str = "<settings>") -> Settings:
    """Validate a parsed config with pydantic; raise ConfigError naming the first bad key."""
    try:
        model = model_for(Settings).model_validate(data)
    except ValidationError as e:
        errors = e.errors()
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ConfigError(f"{source}: {_describe(errors[0])}{more}") from None
    settings: Settings = _as_dataclass(Settings, model.model_dump())
    return settings
