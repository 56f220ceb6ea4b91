"""Launchpad config classes derived from the plain parameter dataclasses.

The data, ML and monitoring modules define their parameters once, as frozen dataclasses that
import nothing from Dagster (names, types, defaults, checks in `__post_init__`, a
`description` in each field's metadata). The `dg.Config` an asset takes is built from that
dataclass here, so the launchpad always shows every parameter with the same default, and a
value the dataclass refuses is refused by the launchpad with the dataclass's own message.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, ClassVar, Literal, Union, get_args, get_origin

import dagster as dg
from pydantic import Field, create_model, model_validator


def config_type(hint: Any) -> Any:
    """The Dagster-config type of a dataclass field's type: tuples become lists and literals
    strings (run config is YAML: no tuples, and the launchpad edits strings)."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        members = [config_type(arg) for arg in get_args(hint) if arg is not type(None)]
        optional = type(None) in get_args(hint)
        union = members[0] if len(members) == 1 else Union[tuple(members)]  # noqa: UP007
        return union | None if optional else union
    if origin is tuple:
        return list[config_type(get_args(hint)[0])]
    if origin is Literal:
        return str
    return hint


def from_config_value(value: Any) -> Any:
    """A run-config value as the dataclass holds it (lists back to tuples)."""
    return tuple(value) if isinstance(value, list) else value


def parameter_fields(params: type) -> dict[str, tuple[Any, Any, str]]:
    """name -> (config type, default, description) of every field of the dataclass `params`."""
    hints = typing.get_type_hints(params)
    return {
        item.name: (config_type(hints[item.name]), item.default, item.metadata["description"])
        for item in dataclasses.fields(params)
    }


class ParametersConfig(dg.Config):
    """Base of the derived classes: `to_params()` builds the dataclass, which checks it."""

    parameters: ClassVar[type]

    def to_params(self) -> Any:
        values = {name: from_config_value(value) for name, value in self.model_dump().items()}
        return self.parameters(**values)

    @model_validator(mode="after")
    def _valid(self) -> ParametersConfig:
        self.to_params()  # the launchpad shows the dataclass's own message
        return self


def config_from_parameters(
    params: type,
    *,
    name: str,
    module: str,
    doc: str,
    base: type[ParametersConfig] = ParametersConfig,
    optional: bool = False,
    extra: dict[str, Any] | None = None,
) -> type[ParametersConfig]:
    """A `dg.Config` subclass with one field per field of the dataclass `params`.

    `optional=True` makes every field `T | None = None` (empty: the value of whatever the
    base's `to_params` starts from, e.g. a preset); `extra` adds fields the dataclass lacks,
    as `name=(type, pydantic.Field(...))`. `module` is the `__name__` of the module that
    binds the class to `name` (so it pickles and its errors name the right place).
    """
    fields: dict[str, Any] = {}
    for field_name, (kind, default, description) in parameter_fields(params).items():
        if optional:
            fields[field_name] = (kind | None, Field(default=None, description=description))
        else:
            fields[field_name] = (kind, Field(default=default, description=description))
    fields.update(extra or {})
    model = create_model(name, __base__=base, __doc__=doc, __module__=module, **fields)
    model.parameters = params
    return model
