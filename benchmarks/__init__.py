"""Performance benchmarks with JSON output; ``python -m benchmarks`` (``make bench``) runs them."""
