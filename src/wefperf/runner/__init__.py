"""One run's phases in order (health, baseline, load, drain, count, S3 check, verdict), the reporter protocol they speak through, and what a run checks before its load."""
