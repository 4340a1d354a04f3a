"""Watching the server under test: health, its count (JSON or Prometheus), restarts, TLS failures explained."""
