"""wefperf: an open-model load tester for Windows Event Forwarding collectors.

From Python (inside any running event loop; prints nothing unless asked)::

    import wefperf
    settings = wefperf.load_settings("baseline", {"wef_endpoint": "http://127.0.0.1:5985"})
    result = await wefperf.run(settings)
    assert result.passed, result.verdict.reasons
"""

from __future__ import annotations

import asyncio
from importlib import metadata

from .metrics import LoadSummary, Percentiles
from .report.console import ConsoleReporter, Reporter
from .result import RunResult, ServerStats
from .settings import ConfigError, Settings, load_settings
from .verdict import Verdict

__all__ = [
    "ConfigError", "ConsoleReporter", "LoadSummary", "Percentiles", "Reporter", "RunResult",
    "ServerStats", "Settings", "Verdict", "load_settings", "run",
]


def _installed_version() -> str:
    """The version is written once, in pyproject.toml; this reads what was installed from it."""
    try:
        return metadata.version("wefperf")
    except metadata.PackageNotFoundError:  # a source tree on sys.path, never installed
        return "0+unknown"


__version__ = _installed_version()


async def run(
    settings: Settings,
    *,
    console: bool = False,
    reporter: Reporter | None = None,
    stop: asyncio.Event | None = None,
    profile: str | None = None,
) -> RunResult:
    """Run one test; `console=True` prints the CLI's output, `stop.set()` ends it early."""
    from .runner import run_test

    rep = reporter or (ConsoleReporter() if console else None)
    return await run_test(settings, reporter=rep, stop=stop, profile=profile)
