"""Small pieces of wording every report shares, so `1 batch` never reads `1 batches`."""

from __future__ import annotations


def plural(n: int, word: str) -> str:
    """`1 batch`, `2 batches`, `1,000 events`: the count with the word in the right number."""
    if n == 1:
        return f"1 {word}"
    return f"{n:,} {word + 'es' if word.endswith(('s', 'sh', 'ch', 'x')) else word + 's'}"
