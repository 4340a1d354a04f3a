"""The open-model scheduler and the sender pool."""

from ..model import ProgressInfo
from .engine import LoadEngine
from .scheduler import Schedule, Scheduler

__all__ = ["LoadEngine", "ProgressInfo", "Schedule", "Scheduler"]
