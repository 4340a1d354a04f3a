"""Event templates, the batch wire format and the pre-serialized pool."""

from .marker import Marker, find_markers, new_run_id
from .pool import PayloadPool, Variant, build_pool
from .wire import CONTENT_TYPE

__all__ = ["CONTENT_TYPE", "Marker", "PayloadPool", "Variant", "build_pool", "find_markers", "new_run_id"]
