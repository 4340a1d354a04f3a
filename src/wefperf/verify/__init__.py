"""The async S3 parquet verifier: what a collector really stored, down to each event of a run.

listing (partitions and layout) → reader (size, footer, rows by ranged GETs) → accounting
(this run's markers against what was acknowledged) → poll (repeat until done or out of time).
"""

from .accounting import Accounting, format_ranges
from .model import VerifyOptions, VerifyResult, dates_covered
from .poll import verify_s3

__all__ = ["Accounting", "VerifyOptions", "VerifyResult", "dates_covered", "format_ranges", "verify_s3"]
