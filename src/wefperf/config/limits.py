"""Open-file limits: simulated hosts hold one socket each, so 10,000 hosts need 10,000 files."""

from __future__ import annotations

from .rules import ConfigError

# Files the process needs beside the hosts' sockets: stdio, the loop, the stats and S3 clients.
MARGIN = 256


def raise_open_files(needed: int = 0) -> tuple[int, int] | None:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return (soft, hard) after, None where unknown.

    On a hard limit of "unlimited" the soft limit goes to `needed` (the kernel refuses
    infinity there), never below what it was.
    """
    try:
        import resource
    except ImportError:  # Windows: no such limit to raise
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        target = max(needed, soft) if soft != resource.RLIM_INFINITY else soft
    if target != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft, hard


def ensure_open_files_for_hosts(hosts: int) -> None:
    """Raise the limit for `hosts` sockets; ConfigError (one line, exit 2) when the hard limit is too low."""
    if hosts <= 0:
        return
    needed = hosts + MARGIN
    limits = raise_open_files(needed)
    if limits is None:
        return
    soft, _ = limits
    try:
        import resource

        if soft == resource.RLIM_INFINITY:
            return
    except ImportError:  # pragma: no cover - raise_open_files returned None already
        return
    if soft < needed:
        raise ConfigError(
            f"PERF_TEST_HOSTS: {hosts:,} hosts need about {needed:,} open files (a socket each), but this"
            f" process may open at most {soft:,}: raise the open-files limit (RLIMIT_NOFILE: `ulimit -Hn`"
            f" as root, nofile in /etc/security/limits.conf, or docker run --ulimit nofile={needed}) or use fewer hosts"
        )
