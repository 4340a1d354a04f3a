"""The open-model scheduler and the sender pool."""

from .engine import LoadEngine, ProgressInfo
from .scheduler import Schedule, Scheduler

__all__ = ["LoadEngine", "ProgressInfo", "Schedule", "Scheduler"]
