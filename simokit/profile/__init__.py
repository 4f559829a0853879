"""Latency and memory of the merged engine against running the separate experts."""
