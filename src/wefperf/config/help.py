"""A setting's help text: its meaning, its environment variable and its default, as flags show it."""

from __future__ import annotations

from typing import Any

from .layers import alias_of
from .settings import SECRET_FIELDS, Settings


def field_help(field: str, default: str | None = None) -> str:
    """A flag's help: "meaning (env NAME, default X)"; a secret's default is never shown.

    `default` replaces the shown default where a command treats "not set" its own way.
    """
    info = Settings.model_fields[field]
    where = f"env {alias_of(field, info)}"
    if field in SECRET_FIELDS:
        return f"{info.description} ({where}; default not shown)"
    # A default_factory (stages, thresholds) leaves `default` as pydantic's placeholder: build the value.
    shown = show_default(info.get_default(call_default_factory=True)) if default is None else default
    return f"{info.description} ({where}, default {shown})"


def show_default(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value == "":
        return "empty"
    if isinstance(value, (list, dict)) and not value:
        return "none"
    if isinstance(value, float) and value.is_integer():
        return f"{int(value):,}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
