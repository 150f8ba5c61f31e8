"""The notebooks, run as a person runs them: against AIOS_HOME, in a kernel of this
virtualenv's python, over generated history and over a home with nothing in it yet; and
committed without outputs."""

from __future__ import annotations

import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_notebook

import aios
from aios import insights
from aios.home import HomePaths
from tests.history import generate

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PERIOD = "over the last 7 days"  # the notebooks' default DAYS


def read(path: Path) -> NotebookNode:
    nb: NotebookNode = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    return nb


def execute(notebook: str | NotebookNode, home: HomePaths) -> NotebookNode:
    """Every cell run in order with AIOS_HOME set to ``home``; CellExecutionError at the first
    cell that raises."""
    nb = read(NOTEBOOKS / notebook) if isinstance(notebook, str) else notebook
    # The python3 kernel as ipykernel describes it from inside this process: this interpreter,
    # whatever kernelspecs other Jupyter installs on the machine have registered.
    km = AsyncKernelManager(
        kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[])
    )
    client = NotebookClient(
        nb, km=km, timeout=120, resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute(cleanup_kc=True, env={**os.environ, "AIOS_HOME": str(home.root)})
    return nb


def cell(nb: NotebookNode, cell_id: str) -> NotebookNode:
    found: NotebookNode = next(c for c in nb.cells if c.get("id") == cell_id)
    return found


def text(nb: NotebookNode, cell_id: str) -> str:
    """What a reader sees of a cell as text: what it printed and its tables' plain text."""
    parts = []
    for output in cell(nb, cell_id).outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif "text/plain" in output.get("data", {}):
            parts.append(output.data["text/plain"])
    return "\n".join(parts)


def charts(nb: NotebookNode, cell_id: str) -> int:
    return sum("image/png" in o.get("data", {}) for o in cell(nb, cell_id).outputs)


def row_values(table: str, label: str) -> list[str]:
    """The values in the row of a printed DataFrame that starts with ``label``."""
    row = next(line for line in table.splitlines() if line.startswith(label))
    return row[len(label) :].split()


def table_row(table: str, label: str) -> dict[str, str]:
    """That row by column name (for tables whose column names have no spaces)."""
    header = next(line for line in table.splitlines() if line.startswith(" ")).split()
    values = row_values(table, label)
    assert len(values) == len(header), (header, values)
    return dict(zip(header, values, strict=True))


def assert_clean(nb: NotebookNode) -> None:
    """No traceback and nothing on stderr (warnings included) in any cell."""
    for c in nb.cells:
        for output in c.get("outputs", []):
            assert output.output_type != "error", (c.id, output.get("evalue"))
            assert output.get("name") != "stderr", (c.id, output.text)


def test_score_trends_on_generated_history(home: HomePaths) -> None:
    history = generate(home, days=2)
    with insights.open_home() as con:
        scores = insights.score_history(con).dropna(subset=["score"])
        finished = insights.remediations(con).dropna(subset=["finished"])

    nb = execute("score_trends.ipynb", home)

    assert_clean(nb)
    assert f"{home.root}: {history.scores} evolution scores" in text(nb, "load")
    shares = re.findall(r"^(excellent|good|degraded|critical)\s+([\d.]+)$", text(nb, "score"), re.M)
    assert [grade for grade, _ in shares] == ["excellent", "good", "degraded", "critical"]
    assert sum(float(share) for _, share in shares) == pytest.approx(100, abs=0.3)
    latest = scores.iloc[-1]
    assert (
        f"Latest score {latest['score']:.3f} ({latest['grade']}), trend {latest['trend']}"
        in text(nb, "trend")
    )
    components = text(nb, "components")
    assert "task_success_rate" in components and "No data in this period: " in components
    # Before and after: the latest finished remediation, the means of the hours either side.
    fix = finished.iloc[-1]
    at, window = fix["finished"], pd.Timedelta("6h")
    before = scores[(scores["time"] >= at - window) & (scores["time"] < at)]["score"]
    after = scores[(scores["time"] > at) & (scores["time"] <= at + window)]["score"]
    shown = text(nb, "before-after")
    assert f"{fix['remediation_id']}: {fix['playbook']} after resource.high" in shown
    assert len(before) > 0 and len(after) > 0
    for label, side in [("6h before", before), ("6h after", after)]:
        mean, count = row_values(shown, label)
        assert float(mean) == pytest.approx(side.mean(), abs=5e-4), label
        assert int(count) == len(side), label
    assert f"Change: {after.mean() - before.mean():+.3f}" in shown
    for chart in ("score", "trend", "components", "before-after"):
        assert charts(nb, chart) == 1, chart


def test_before_and_after_a_chosen_remediation(home: HomePaths) -> None:
    """The first remediation finished before the first score: the notebook says so."""
    generate(home, days=2)
    with insights.open_home() as con:
        scores = insights.score_history(con).dropna(subset=["score"])
        first = insights.remediations(con).dropna(subset=["finished"]).iloc[0]
    assert first["finished"] < scores["time"].iloc[0]
    after = scores[scores["time"] <= first["finished"] + pd.Timedelta("6h")]["score"]
    nb = read(NOTEBOOKS / "score_trends.ipynb")
    parameters = cell(nb, "parameters")
    parameters.source = parameters.source.replace(
        "REMEDIATION = None", f"REMEDIATION = {first['remediation_id']!r}"
    )

    execute(nb, home)

    assert_clean(nb)
    shown = text(nb, "before-after")
    assert shown.startswith(f"{first['remediation_id']}: {first['playbook']}")
    assert row_values(shown, "6h before") == ["NaN", "0"]
    mean, count = row_values(shown, "6h after")
    assert float(mean) == pytest.approx(after.mean(), abs=5e-4) and int(count) == len(after) > 0
    assert "No scores in the 6h before it: try a longer WINDOW." in shown
    assert "Change:" not in shown
    assert charts(nb, "before-after") == 1


def test_incidents_on_generated_history(home: HomePaths) -> None:
    history = generate(home, days=2)
    deadline = datetime.now(UTC) + timedelta(minutes=30)
    aios.bus().emit(
        "approval.waiting",
        {
            "remediation_id": "rem-waiting",
            "playbook": "restart_worker",
            "risk": "medium",
            "flow_run_id": "fr-waiting",
            "deadline": deadline.isoformat(),
        },
        source="aios.approvals",
    )
    with insights.open_home() as con:
        fixes = insights.remediations(con)
        signatures = insights.top_signatures(con)
    outcomes = list(history.remediations.values())

    nb = execute("incidents.ipynb", home)

    assert_clean(nb)
    fixed = fixes[fixes["outcome"] == "succeeded"]["resolve_s"]
    assert (
        f"MTTR {PERIOD}: {fixed.mean() / 60:.1f} min (median {fixed.median() / 60:.1f} min), "
        f"{outcomes.count('succeeded')} verified fixes of {len(fixes.dropna(subset=['finished']))}"
    ) in text(nb, "mttr")
    assert {"automatic", "after approval"} <= set(
        re.findall(r"^(automatic|after approval)", text(nb, "mttr"), re.M)
    )
    restart = table_row(text(nb, "effectiveness"), "restart_worker")
    assert int(restart["rolled_back"]) == outcomes.count("rolled_back") > 0
    assert int(restart["denied"]) == outcomes.count("denied") > 0
    idle = table_row(text(nb, "effectiveness"), "idle_agents_while_cpu_high")
    assert (idle["failed"], idle["rolled_back"], idle["success_rate"]) == ("0", "0", "1.0")
    top = signatures.iloc[0]
    assert re.search(
        rf"^0\s+{re.escape(top['signature'])}\s+{top['count']}\s", text(nb, "signatures"), re.M
    )
    asked = [
        [int(v) for v in line.split()[2:7]]
        for line in text(nb, "approvals").splitlines()
        if re.match(r"\d{4}-\d\d-\d\d ", line)
    ]
    requested, granted, denied, expired, late = (sum(column) for column in zip(*asked, strict=True))
    assert requested == len(fixes.dropna(subset=["requested"])) > 0
    assert (denied, expired, late) == (outcomes.count("denied"), 0, 0)
    assert granted == requested - denied
    waiting = text(nb, "waiting")
    assert "rem-waiting" in waiting and "fr-waiting" in waiting
    for chart in ("mttr", "effectiveness", "signatures", "approvals"):
        assert charts(nb, chart) == 1, chart


def test_the_kernel_is_this_virtualenvs_python_with_the_home(home: HomePaths) -> None:
    source = "import os, sys\nprint(sys.prefix)\nprint(os.environ['AIOS_HOME'])"
    nb = new_notebook(cells=[new_code_cell(source)])  # type: ignore[no-untyped-call]
    execute(nb, home)
    assert text(nb, nb.cells[0].id).split() == [sys.prefix, str(home.root)]


@pytest.mark.parametrize("notebook", ["score_trends.ipynb", "incidents.ipynb"])
def test_a_home_without_an_event_log_gets_a_message_not_a_traceback(
    home: HomePaths, notebook: str
) -> None:
    assert not home.events.exists()
    nb = execute(notebook, home)
    assert_clean(nb)
    assert text(nb, "load").strip() == (
        f"Nothing to show: {home.root} has no event log (events/): set AIOS_HOME to an AIOS "
        "home, or run `aios demo` first"
    )
    for c in nb.cells[nb.cells.index(cell(nb, "load")) + 1 :]:
        if c.cell_type == "code":
            assert text(nb, c.id).startswith("No "), c.id
            assert charts(nb, c.id) == 0, c.id


def test_a_home_without_scores_yet_says_so(home: HomePaths) -> None:
    aios.bus().emit("task.completed", {"task": "answer"}, source="writer")
    nb = execute("score_trends.ipynb", home)
    assert_clean(nb)
    assert text(nb, "score").startswith(f"No evolution scores in {home.root} {PERIOD}.")
    assert text(nb, "before-after").startswith("No finished remediation with evolution scores")
    assert sum(charts(nb, c.id) for c in nb.cells if c.cell_type == "code") == 0


STRIP = (
    "strip it: jupyter nbconvert --clear-output --ClearMetadataPreprocessor.enabled=True "
    "--inplace notebooks/*.ipynb"
)


def test_the_notebooks_are_committed_without_outputs() -> None:
    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert {p.name for p in notebooks} >= {"score_trends.ipynb", "incidents.ipynb"}
    for path in notebooks:
        nb = read(path)
        nbformat.validate(nb)
        for c in nb.cells:
            assert not c.metadata, (path.name, c.id, STRIP)
            if c.cell_type == "code":
                assert c.outputs == [] and c.execution_count is None, (path.name, c.id, STRIP)
        # Nothing of the machine it last ran on: no versions, no paths.
        assert set(nb.metadata) <= {"kernelspec", "language_info"}, (path.name, STRIP)
        assert nb.metadata.get("language_info", {}) in ({}, {"name": "python"}), (path.name, STRIP)
        assert nb.metadata.get("kernelspec", {}).get("name", "python3") == "python3", path.name
