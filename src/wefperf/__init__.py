"""wefperf."""
