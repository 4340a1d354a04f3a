"""The per-event marker that lets the S3 verifier count lost and duplicated events exactly.

Every event carries `<Data Name="WefperfMarker">RUNID:BATCH:INDEX</Data>`: the run id,
the batch number (fixed width, patched in per batch) and the event's index in its batch.
Its sequence number within the run is BATCH * batch_size + INDEX.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

MARKER_FIELD = "WefperfMarker"
BATCH_DIGITS = 10
# Stands in the template where the batch number goes; exactly BATCH_DIGITS bytes wide.
BATCH_PLACEHOLDER = b"#" * BATCH_DIGITS

# Anchored on the element: a `<` inside XML text is always escaped, so no value can forge it.
MARKER_RE = re.compile(
    r'<Data Name=\\?"' + MARKER_FIELD + r'\\?">([0-9a-z]+):(\d{' + str(BATCH_DIGITS) + r"}):(\d+)<"
)


@dataclass(frozen=True, slots=True)
class Marker:
    run_id: str
    batch: int
    index: int

    def seq(self, batch_size: int) -> int:
        return self.batch * batch_size + self.index


def new_run_id() -> str:
    return secrets.token_hex(6)


def batch_token(batch: int) -> bytes:
    return b"%010d" % batch


def find_markers(text: str) -> list[Marker]:
    """Every marker in raw XML, or in the JSON that embeds it (escaped quotes)."""
    return [Marker(m.group(1), int(m.group(2)), int(m.group(3))) for m in MARKER_RE.finditer(text)]
