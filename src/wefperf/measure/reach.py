"""When batches could not reach the events endpoint: the recorder's side of a collector restart.

The recorder keeps a ReachTracker; observe/restarts.py matches its outages with the falls it sees
in the server's counters. Times are on the load's clock (time.perf_counter).
"""

from __future__ import annotations

from dataclasses import dataclass

# Failure classes (load/errors.py's CONNECTION_REFUSED, CONNECTION_RESET) that mean "nothing is
# listening there" rather than "it answered badly". Spelled out: the recorder imports this module,
# and the load package imports the recorder.
UNREACHABLE = frozenset({"connection_refused", "connection_reset"})


@dataclass(frozen=True)
class Outage:
    """Batches failed to reach the events endpoint from `start` until the next acknowledgement."""

    start: float
    end: float | None  # None: no batch was acknowledged after it
    acked_before: int  # events acknowledged when it began


class ReachTracker:
    """Kept by the recorder: the spans in which batches were refused or reset, and nothing acknowledged."""

    def __init__(self) -> None:
        self.outages: list[Outage] = []
        self.down: tuple[float, int] | None = None  # (when the first failure came, events acknowledged then)

    def failed(self, error_class: str, when: float, acked: int) -> None:
        if self.down is None and error_class in UNREACHABLE:
            self.down = (when, acked)

    def up(self, when: float) -> None:
        """An acknowledgement: any outage is over (call only while `down` is set)."""
        if self.down is not None:
            self.outages.append(Outage(self.down[0], when, self.down[1]))
            self.down = None

    def spans(self) -> list[Outage]:
        """Every outage, one still open included."""
        tail = [Outage(self.down[0], None, self.down[1])] if self.down is not None else []
        return [*self.outages, *tail]
