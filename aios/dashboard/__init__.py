"""The dashboard: a read-only web app on 127.0.0.1:8765 that ``aios up`` serves (also
``aios dashboard``): Overview, Agents, Evolution, Performance and Approvals, live over
WebSocket with HTTP polling as the fallback. Its assets are shipped; nothing loads from the
internet.
"""
