"""Prefect flows: the six agents of the OODA loop, the orchestrator DAG, the reactor,
heartbeat and maintenance. Flows compose tasks; the core in ``aios`` never imports them."""
