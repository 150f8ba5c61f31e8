"""``aios demo``: a scenario on the embedded default (``aios up``) with a workload that really
runs; AIOS detects, remediates (one approval, granted by the demo), verifies, rolls back a fix
that did not work, scores and learns, and the summary is read back from the event log."""
