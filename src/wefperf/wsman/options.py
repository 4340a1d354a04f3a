"""What the reference collector's subscription offers its clients: the Subscribe's delivery options.

The defaults are OpenWEC's (common/src/subscription.rs): Heartbeats 3600 s, ConnectionRetry 5 times
60 s, MaxTime 30 s, no MaxElements, MaxEnvelopeSize 512,000 bytes, ContentFormat Raw. (A subscription
made in Windows' Event Viewer defaults to RenderedText; OpenWEC's to Raw.) `wefperf collector --wsman`
takes them as flags; `wefperf run --embedded` as one setting, `PERF_TEST_EMBEDDED_SUBSCRIPTION`,
in the Subscribe's own names: `MaxElements=20,MaxTime=5,ContentFormat=RenderedText,ConnectionRetry=5x60`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from . import ns

CONTENT_FORMATS = ("Raw", "RenderedText")
_DAY_S = 86_400.0


@dataclass(frozen=True)
class SubscriptionOptions:
    """The delivery options of the one subscription the reference collector offers."""

    heartbeat_s: float = 3600.0
    max_time_s: float = 30.0
    max_elements: int | None = None  # None: the Subscribe has no MaxElements (MaxTime alone decides)
    content_format: str = "Raw"
    retry_total: int = 5
    retry_s: float = 60.0
    max_envelope: int = ns.DEFAULT_MAX_ENVELOPE

    def check(self) -> SubscriptionOptions:
        """Itself, or ValueError naming the option that is out of range."""
        for name, value in (("Heartbeats", self.heartbeat_s), ("MaxTime", self.max_time_s)):
            if not (0 < value <= 365 * _DAY_S):
                raise ValueError(f"{name} must be more than 0 seconds and at most a year (got {value:g})")
        if self.max_elements is not None and self.max_elements < 1:
            raise ValueError(f"MaxElements must be 1 or more (got {self.max_elements})")
        if self.content_format not in CONTENT_FORMATS:
            raise ValueError(f"ContentFormat must be Raw or RenderedText (got {self.content_format!r})")
        if self.retry_total < 0 or not (0 <= self.retry_s <= 365 * _DAY_S):
            raise ValueError(f"ConnectionRetry must be a count of 0 or more times 0 or more seconds"
                             f" (got {self.retry_total}x{self.retry_s:g})")
        return self

    def collector_args(self) -> list[str]:
        """The `wefperf collector` flags that offer these options (the embedded stack passes them)."""
        args = [
            "--heartbeat-secs", repr(self.heartbeat_s), "--max-time-secs", repr(self.max_time_s),
            "--content-format", self.content_format,
            "--connection-retry-count", str(self.retry_total), "--connection-retry-secs", repr(self.retry_s),
        ]
        return args + (["--max-elements", str(self.max_elements)] if self.max_elements is not None else [])

    def describe(self) -> str:
        """One line: what the subscription offers, in the Subscribe's names."""
        elements = f"MaxElements {self.max_elements}, " if self.max_elements is not None else "no MaxElements, "
        return (f"{elements}MaxTime {self.max_time_s:g} s, ContentFormat {self.content_format},"
                f" ConnectionRetry {self.retry_total} x {self.retry_s:g} s, Heartbeats {self.heartbeat_s:g} s")


def _seconds(name: str, text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{name}: not a number of seconds ({text!r})")
    return value


def parse_options(text: str) -> SubscriptionOptions:
    """`MaxElements=20,MaxTime=5,ContentFormat=RenderedText,ConnectionRetry=5x60,Heartbeats=900`
    (any of them, in any order; seconds for the times); ValueError says what is wrong."""
    options = SubscriptionOptions()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, value = (s.strip() for s in item.partition("="))
        if not sep or not value:
            raise ValueError(f"expected NAME=VALUE, got {item!r}")
        try:
            if name == "MaxElements":
                options = replace(options, max_elements=int(value))
            elif name == "MaxTime":
                options = replace(options, max_time_s=_seconds(name, value))
            elif name == "Heartbeats":
                options = replace(options, heartbeat_s=_seconds(name, value))
            elif name == "ContentFormat":
                options = replace(options, content_format=value)
            elif name == "ConnectionRetry":
                count, x, secs = value.lower().partition("x")
                if not x:
                    raise ValueError
                options = replace(options, retry_total=int(count), retry_s=_seconds(name, secs))
            else:
                raise KeyError(name)
        except KeyError:
            raise ValueError(f"unknown option {name!r}: MaxElements, MaxTime, ContentFormat, ConnectionRetry"
                             " or Heartbeats") from None
        except ValueError as exc:
            if str(exc).startswith(name):
                raise
            hint = "COUNTxSECONDS, e.g. 5x60" if name == "ConnectionRetry" else "a number"
            raise ValueError(f"{name}: expected {hint} (got {value!r})") from None
    return options.check()
