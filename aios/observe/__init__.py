"""Observing: host and agent collectors, thresholds, baselines, bursts, inbox and HTTP ingest."""
