"""The DuckDB store: projections of the event log for analytics (``events`` and registered ones).

Open it only through ``open_store``; see ``session`` for why.
"""

from aios.store.projections import Projection, register_projection, registered_projections
from aios.store.session import open_store
from aios.store.sync import SyncReport, rebuild

__all__ = [
    "Projection",
    "SyncReport",
    "open_store",
    "rebuild",
    "register_projection",
    "registered_projections",
]
