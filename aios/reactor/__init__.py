"""The reactor: playbooks applied to events, with approval, verify, rollback and breakers."""
