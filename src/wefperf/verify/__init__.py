"""The async S3 parquet verifier: what a collector really stored, down to each event of a run.

listing (partitions and layout) → reader (size, footer, rows by ranged GETs) → markers (this
run's rows, placed in its numbering) → accounting (against what was acknowledged) → poll
(repeat until done and quiet, or out of time).
"""

from .accounting import Accounting, format_ranges
from .model import VerifyOptions, VerifyResult, dates_covered, run_dates
from .numbering import Numbering
from .poll import verify_s3

__all__ = ["Accounting", "Numbering", "VerifyOptions", "VerifyResult", "dates_covered", "format_ranges", "run_dates",
           "verify_s3"]
