"""Agents: their lifecycle state machine, derived from events, and who is free for new work."""
