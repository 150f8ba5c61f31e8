"""Playbooks: schema, conditions, loading (YAML, JSON, the seed form) and matching."""
