"""Profiles: the built-in ones and .toml files, read and checked (a [settings] table and nothing stray)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from .rules import ConfigError
from .settings import Settings

PROFILE_DIR = Path(__file__).parent.parent / "profiles"
# A profile file's top-level keys; every setting goes in its [settings] table.
PROFILE_KEYS = ("name", "title", "description", "settings", "stages", "thresholds")


def builtin_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def read_profile(name_or_path: str) -> dict[str, Any]:
    """A profile's TOML as a dict: `name`, `title`, `description` and a `settings` table.

    Anything else at the top level, or no [settings] table, is refused: a setting outside the
    table would otherwise be ignored without a word and the run would use the defaults.
    """
    path = profile_path(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--profile: {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"--profile: cannot read {path}: {exc.strerror or exc}") from None
    stray = sorted(set(data) - set(PROFILE_KEYS))
    if stray:
        where = " (settings go in the [settings] table)" if set(stray) & set(Settings.model_fields) else ""
        raise ConfigError(
            f"--profile: {path}: unknown top-level key(s) {', '.join(stray)}{where};"
            f" allowed: {', '.join(PROFILE_KEYS)}"
        )
    if "settings" not in data:
        raise ConfigError(f"--profile: {path}: no [settings] table (put target_eps = ... and the rest under [settings])")
    settings = data["settings"]
    if not isinstance(settings, dict):
        raise ConfigError(f"--profile: {path}: [settings] must be a table")
    for key in ("name", "title", "description"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"--profile: {path}: {key} must be a string")
    unknown = sorted(set(settings) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(f"--profile: {path}: unknown setting(s) {', '.join(unknown)}")
    data.setdefault("name", path.stem)
    return data


def profile_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if not (path.suffix == ".toml" or "/" in name_or_path):
        path = PROFILE_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise ConfigError(
                f"--profile: unknown profile {name_or_path!r} (built in: {', '.join(builtin_profiles())};"
                " or give a path to a .toml file)"
            )
    if not path.is_file():
        raise ConfigError(f"--profile: no such file {str(path)!r}")
    return path
