"""The score over time: one row per ``score.updated``, its grade, trend and components."""

from __future__ import annotations

from datetime import datetime

import duckdb
import orjson
import pandas as pd

from aios.score.engine import GRADES

# Lower edge of each grade, per preset, best first (as the score engine grades).
GRADE_BANDS: dict[str, list[tuple[float, str]]] = {k: list(v) for k, v in GRADES.items()}


def _scores_table(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'scores'"
        ).fetchall()[0][0]
    )


def score_history(
    con: duckdb.DuckDBPyConnection,
    preset: str = "evolution",
    since: datetime | None = None,
) -> pd.DataFrame:
    """Columns ``time``, ``score`` (None when no component had data), ``grade``, ``trend``;
    oldest first."""
    if not _scores_table(con):
        return pd.DataFrame(columns=["time", "score", "grade", "trend"])
    frame: pd.DataFrame = con.execute(
        "SELECT time, score, grade, trend FROM scores "
        "WHERE preset = ? AND (?::TIMESTAMPTZ IS NULL OR time >= ?) ORDER BY time, seq",
        [preset, since, since],
    ).df()
    return frame


def score_components(
    con: duckdb.DuckDBPyConnection,
    preset: str = "evolution",
    since: datetime | None = None,
) -> pd.DataFrame:
    """One row per score, a column per component (its value, NaN when it had no data)."""
    if not _scores_table(con):
        return pd.DataFrame(columns=["time"])
    rows = con.execute(
        "SELECT time, components FROM scores "
        "WHERE preset = ? AND (?::TIMESTAMPTZ IS NULL OR time >= ?) ORDER BY time, seq",
        [preset, since, since],
    ).fetchall()
    records = []
    for time, components in rows:
        record: dict[str, object] = {"time": time}
        for component in orjson.loads(components or "[]"):
            record[component["name"]] = component.get("value")
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return pd.DataFrame(columns=["time"])
    return frame.astype({c: "float64" for c in frame.columns if c != "time"})
