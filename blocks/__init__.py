"""Prefect blocks: AIOS settings editable in the Prefect UI, and notifications."""
