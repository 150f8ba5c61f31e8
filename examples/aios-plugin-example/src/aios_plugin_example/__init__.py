"""An AIOS plugin of every kind, installed by the entry points in ``pyproject.toml``.

Each module holds one kind; ``broken`` fails to import on purpose.
"""
