"""Measurement on the hot path: the recorder (counters, latency histograms, timeline) and the HDR codec."""
