"""A framed request as lists of buffers for `writelines`, so the body is never joined.

The pool keeps each batch shape as constant parts that the batch number goes between.
Joining them for every request copies the whole body (1.6 MB for 1,000 events); here a
request is the parts with the token between each pair, handed to the transport as a list
(uvloop writes a list with writev, straight from these bytes objects).

The request also comes cut into slices of at most `MAX_WRITE` bytes, for a sender that
must not hold the event loop in one long write while another batch falls due.
"""

from __future__ import annotations

from dataclasses import dataclass

from .marker import BATCH_DIGITS

# Bytes per slice (plus at most one batch token). A write of this size into a loopback
# socket takes tens of microseconds, against several hundred for a whole 1.6 MB body.
MAX_WRITE = 256 * 1024
# Below this a request is joined after all: one small copy costs less than handing the
# kernel a list of buffers (a 10-event request is 16 KB in 21 parts).
JOIN_BELOW = 32 * 1024


@dataclass(frozen=True)
class Slice:
    """Constant pieces with the batch token between each pair."""

    pieces: tuple[bytes, ...]
    join: bool = False

    def fill(self, token: bytes) -> list[bytes]:
        """Buffers for one `writelines`: the pieces and the token, by reference."""
        if self.join:
            return [token.join(self.pieces)]
        out = [token] * (2 * len(self.pieces) - 1)
        out[::2] = self.pieces
        return out

    @property
    def length(self) -> int:
        return sum(map(len, self.pieces)) + (len(self.pieces) - 1) * BATCH_DIGITS


@dataclass(frozen=True)
class Framed:
    """One batch shape's request, whole and in slices."""

    whole: Slice
    slices: tuple[Slice, ...]


def frame_parts(parts: tuple[bytes, ...], max_write: int = MAX_WRITE) -> Framed:
    """`parts` (head included) as one whole request and as write slices."""
    whole = Slice(parts)
    if whole.length < JOIN_BELOW:
        whole = Slice(parts, join=True)
    return Framed(whole, slice_parts(parts, max_write) if whole.length > max_write else (whole,))


def slice_parts(parts: tuple[bytes, ...], max_write: int) -> tuple[Slice, ...]:
    """Cut `parts` into slices of at most `max_write` bytes plus one token.

    A cut falls inside or at the end of a part, never inside a token, so each slice is
    again pieces with a token between each pair; the straddling part is split in two
    here, once, not per request.
    """
    if max_write < 1:
        raise ValueError("max_write must be positive")
    slices: list[Slice] = []
    pieces: list[bytes] = []
    size = 0
    for i, part in enumerate(parts):
        if i:
            size += BATCH_DIGITS  # the token before this part
        while size + len(part) > max_write:
            cut = max(max_write - size, 0)
            pieces.append(part[:cut])
            slices.append(Slice(tuple(pieces)))
            part, pieces, size = part[cut:], [], 0
        pieces.append(part)
        size += len(part)
    slices.append(Slice(tuple(pieces)))
    return tuple(slices)
