"""Prefect tasks: each wraps one core call from ``aios`` with retries, timeouts, small results."""
