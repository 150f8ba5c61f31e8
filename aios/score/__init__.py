"""Scoring the system: components over a window, presets, grades, trends and alerts."""
