"""The six agents of the OODA loop, as plain functions over the log and the store."""
