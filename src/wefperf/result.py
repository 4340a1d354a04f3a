"""What a run returns to Python callers, and what the reports render: the types live in model.py."""

from __future__ import annotations

from .model import EventIdCount as EventIdCount
from .model import RunResult as RunResult
from .model import ServerStats as ServerStats
from .model import ShardData as ShardData
from .model import pack_sizes as pack_sizes
from .model import unpack_sizes as unpack_sizes
