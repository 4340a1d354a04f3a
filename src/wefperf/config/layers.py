"""Flag > environment > profile > default, through pydantic-settings' public source API only.

Each layer is a `PydanticBaseSettingsSource` subclass holding one mapping. `build_layered`
returns them from `settings_customise_sources` of a subclass made for that one call, so a
harness can hand its own environment and profile without global or context state. Making the
subclass costs about 1 ms (pydantic builds its schema); settings are loaded once per command.
"""

from __future__ import annotations

import os
import types
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

M = TypeVar("M", bound=BaseSettings)


def alias_of(name: str, field: FieldInfo) -> str:
    """The field's environment variable: its validation alias (every wefperf field has one)."""
    alias = field.validation_alias
    return alias if isinstance(alias, str) else name


class _MappingSource(PydanticBaseSettingsSource):
    """One layer: the fields found in one mapping, keyed by alias so layers merge by name."""

    def __init__(self, settings_cls: type[BaseSettings], found: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._found = found

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        key = alias_of(field_name, field)
        return self._found.get(key), key, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._found)


class EnvironSource(_MappingSource):
    """The documented variable names only (any case); a bare field name such as BATCH_SIZE is not read."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        upper = {key.upper(): value for key, value in environ.items()}
        found: dict[str, Any] = {}
        for name, field in settings_cls.model_fields.items():
            alias = alias_of(name, field)
            value = environ.get(alias, upper.get(alias.upper()))
            if value is not None:
                found[alias] = value
        super().__init__(settings_cls, found)


class ProfileSource(_MappingSource):
    """A profile's `[settings]` table, keyed by field name (`target_eps = 10000`)."""

    def __init__(self, settings_cls: type[BaseSettings], values: Mapping[str, Any]) -> None:
        found = {
            alias_of(name, field): values[name] for name, field in settings_cls.model_fields.items() if name in values
        }
        super().__init__(settings_cls, found)


def environment_sources(
    settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource, environ: Mapping[str, str] | None = None
) -> tuple[PydanticBaseSettingsSource, ...]:
    """Keyword arguments, then the documented environment names: what `Model()` reads on its own."""
    return (init_settings, EnvironSource(settings_cls, os.environ if environ is None else environ))


def build_layered(
    model: type[M],
    flags: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    profile: Mapping[str, Any] | None = None,
) -> M:
    """`model` from flags (field names), `environ` (default os.environ) and a profile layer.

    Returns a plain `model` instance whose `model_fields_set` names the settings some layer gave,
    so a caller can tell "left at the default" from "set to the default value".
    """
    env = os.environ if environ is None else environ
    layer = profile or {}

    def sources(
        cls: type[BaseSettings],
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (*environment_sources(settings_cls, init_settings, env), ProfileSource(settings_cls, layer))

    def body(namespace: dict[str, Any]) -> None:
        namespace.update(__module__=model.__module__, settings_customise_sources=classmethod(sources))

    per_call = cast("type[M]", types.new_class(model.__name__, (model,), exec_body=body))
    # Keyed by alias, like the other layers, so a flag wins whatever the pydantic-settings version.
    fields = model.model_fields
    built = per_call(**{alias_of(k, fields[k]) if k in fields else k: v for k, v in flags.items()})
    values = {name: getattr(built, name) for name in fields}
    return model.model_construct(_fields_set=set(built.model_fields_set), **values)
