"""Timed or counted: which of the duration and the total events a run uses when both are given.

A run is timed (PERF_TEST_DURATION_SECS, or the stages) or counted (PERF_TEST_TOTAL_EVENTS), and 0
turns one off. Both given as flags is a mistake and refused. Otherwise the layer with the higher
precedence decides (flag > environment > profile): `--total-events` over a profile's duration makes
a counted run. Both in one lower layer keep the seed suite's rule: the duration wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The flags that make a run timed or counted; stages make it timed too (their total is the duration).
_TIMED = ("duration_secs", "stages")
_COUNTED = "total_events"
_OFF = {"duration_secs": 0, "stages": ""}


class ModeConflict(ValueError):
    """Two flags that each choose the run's length: the message names both."""


def _given(value: Any) -> bool:
    """Set to something other than "off" (0 or empty); a value that does not parse counts as given."""
    if value is None:
        return False
    if isinstance(value, (list, tuple, dict)):
        return bool(value)
    text = str(value).strip()
    if not text:
        return False
    try:
        return float(text) != 0
    except ValueError:
        return True


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def choose_mode(flags: Mapping[str, Any], environ: Mapping[str, str], profile: Mapping[str, Any],
                env_names: Mapping[str, str]) -> dict[str, Any]:
    """`flags` with what makes the run timed or counted as the layers decide; ModeConflict for two flags.

    `flags` and `profile` are keyed by field name, `environ` by variable (any case), `env_names`
    maps a field to its variable.
    """
    timed = [name for name in _TIMED if _given(flags.get(name))]
    if timed and _given(flags.get(_COUNTED)):
        shown = " and ".join(f"{_flag(n)} ({flags[n]})" for n in (*timed, _COUNTED))
        raise ModeConflict(f"{shown} both set how long the run is: it is timed or counted, not both;"
                           f" give one of them (0 turns {_flag('duration_secs')} or {_flag(_COUNTED)} off)")
    if len(timed) > 1:
        raise ModeConflict(f"{_flag('stages')} ({flags['stages']}) and {_flag('duration_secs')}"
                           f" ({flags['duration_secs']}): the stages' total is the duration; give one of them")
    upper = {key.upper(): value for key, value in environ.items()}

    def rank(name: str) -> int:
        """3 flag, 2 environment, 1 profile, 0 default: the highest layer that sets `name` at all."""
        if flags.get(name) is not None:
            return 3
        if env_names[name].upper() in upper:
            return 2
        return 1 if name in profile else 0

    counted = rank(_COUNTED)
    if counted and _given(_value(_COUNTED, counted, flags, upper, profile, env_names)):
        lower = [name for name in _TIMED if 0 < rank(name) < counted]
        if lower and all(rank(name) < counted for name in _TIMED):
            # The counted layer is above every timed one: what a lower layer timed is turned off.
            return {**flags, **{name: _OFF[name] for name in lower}}
    return dict(flags)


def _value(name: str, rank: int, flags: Mapping[str, Any], upper: Mapping[str, str], profile: Mapping[str, Any],
           env_names: Mapping[str, str]) -> Any:
    if rank == 3:
        return flags[name]
    if rank == 2:
        return upper[env_names[name].upper()]
    return profile.get(name)
