"""HDR histograms as wefperf keeps them: their range, and their text form in a segment's results.

Shared by the recorder (which fills them) and the merge (which adds segments' together), so
a merge reads histograms without the recorder.
"""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

# Microseconds, from 1 µs to one hour, three significant figures.
LOWEST_US, HIGHEST_US, DIGITS = 1, 3_600_000_000, 3


def histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def release(h: HdrHistogram) -> None:
    """Let a histogram go now, not at the cyclic GC's next full pass.

    hdrh's histogram and its encoder refer to each other, so a dropped one waits for a full
    collection, which a load under gc.freeze() with few allocations a second may not run for
    minutes: at 500k events/s each second's 57 KB histogram piled up (about 20 MB a minute of
    peak RSS in `make bench`). Cutting the pair frees it on the spot; it must not be used after.
    """
    h.encoder = None


def encode(h: HdrHistogram) -> str:
    """HDR's own compressed encoding as text: what a segment's results carry for the merge."""
    encoded: bytes = h.encode()
    return encoded.decode("ascii")


def decode(text: str) -> HdrHistogram:
    return HdrHistogram.decode(text.encode("ascii"))


def merge_encoded(texts: list[str], digits: int = DIGITS) -> HdrHistogram:
    """One histogram holding every encoded one's counts: merged, never averaged."""
    merged = HdrHistogram(LOWEST_US, HIGHEST_US, digits)
    for text in texts:
        merged.add(decode(text))
    return merged
