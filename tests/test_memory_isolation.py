"""Each agent's memories are its own: on real Chroma (embedded, in a temporary AIOS_HOME) and on
JSON files, another agent's private memories never reach a view by query, filter, key, walk or
a fresh process, nor through a backend that filters loosely; sharing and linking reach exactly
the agent meant, in one collection, for as long as the link stands; ``shared`` is no agent;
lessons are kept per owner, so one agent's failure text never reaches another."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import aios
from aios.event import Event
from aios.home import HomePaths
from aios.memory.embedding import embedder
from aios.memory.json_backend import JsonBackend
from aios.memory.palace import MAX_TOP_K, MemoryPalace
from aios.memory.records import Memory, MemoryAccessError, MemoryInputError, Where
from tests.conftest import run_aios
from tests.loop_helpers import failures, fixes, remediate
from tests.test_memory import BACKENDS, child, word
from tests.test_memory import palace as palace_fixture

palace = palace_fixture  # the operator's palace of the test's home, on each backend

SECRET = "alpha's API key for the billing service rotates on the first of the month"
RUNBOOK = "rotate the billing service API key and restart the workers"


def keys(found: list[Any]) -> set[str]:
    return {item.key for item in found}


# ------------------------------------------------------------------ private stays private
def test_another_agents_private_memory_never_reaches_a_view(palace: MemoryPalace) -> None:
    alpha, beta = palace.for_agent("alpha"), palace.for_agent("beta")
    assert alpha.store("alpha-secret", SECRET).owner == "alpha"
    palace.store("runbook", RUNBOOK)  # the operator's default: shared
    beta.store("beta-note", "beta rotated nothing this month")

    # The very text, every memory there is, and filters that name alpha: nothing of alpha's.
    assert keys(beta.query(SECRET, top_k=MAX_TOP_K)) == {"runbook", "beta-note"}
    assert beta.query(SECRET, where={"owner": "alpha"}) == []
    assert keys(beta.query(SECRET, where={"$or": [{"owner": "alpha"}, {"owner": "beta"}]})) == {
        "beta-note"
    }
    assert keys(beta.query(SECRET, where={"owner": {"$in": ["alpha", "shared"]}})) == {"runbook"}
    assert keys(beta.query(SECRET, where={"owner": {"$ne": "beta"}})) == {"runbook"}
    with pytest.raises(MemoryInputError, match="reserved by AIOS"):
        beta.query(SECRET, where={"_share:beta": True})

    # By key: nothing to get, walk or delete; no way to write over it, share or link it.
    assert beta.get("alpha-secret") is None
    assert beta.delete("alpha-secret") is False
    assert beta.neighbors("alpha-secret") == []
    with pytest.raises(MemoryAccessError, match="taken by a memory beta does not own"):
        beta.store("alpha-secret", "beta's now")
    with pytest.raises(MemoryAccessError, match="no such memory for beta"):
        beta.share("alpha-secret", "beta")
    with pytest.raises(MemoryAccessError, match="no such memory for beta"):
        beta.link("beta-note", "alpha-secret", "about")
    with pytest.raises(MemoryAccessError, match="stores beta's memories only"):
        beta.store("beta-2", "x", owner="alpha")
    with pytest.raises(MemoryAccessError, match="stores beta's memories only"):
        beta.store("beta-2", "x", owner="shared")  # shared memories are the operator's
    with pytest.raises(MemoryInputError, match="reserved by AIOS"):
        beta.store("beta-2", "x", metadata={"_share:beta": True})
    with pytest.raises(MemoryAccessError, match="cannot become alpha's"):
        beta.for_agent("alpha")

    # Nor can it change what everyone shares.
    with pytest.raises(MemoryAccessError, match="taken by a memory beta does not own"):
        beta.store("runbook", "nothing to do")
    with pytest.raises(MemoryAccessError, match="every agent's"):
        beta.delete("runbook")

    secret = alpha.get("alpha-secret")
    assert secret is not None and secret.text == SECRET  # untouched
    assert keys(alpha.query(SECRET, top_k=MAX_TOP_K)) == {"alpha-secret", "runbook"}
    assert (beta.count(), alpha.count(), palace.count()) == (2, 2, 3)
    assert palace.shared_only().count() == 1  # what every agent has in common
    assert palace.get("alpha-secret") is not None  # the operator sees everything


def test_top_k_counts_only_what_the_agent_sees(palace: MemoryPalace) -> None:
    """Were a view's rule applied after the search, the top few would all be alpha's and beta
    would get nothing: the backend searches with it."""
    palace.for_agent("alpha").store_many(
        (f"alpha-{n}", f"tool search timed out after {word(n)}", None) for n in range(300)
    )
    shared = {"s-1": "searching took too long", "s-2": "no answer from search", "s-3": "slow"}
    palace.store_many((key, text, None) for key, text in shared.items())
    text = "tool search timed out"
    assert {m.owner for m in palace.query(text, top_k=50)} == {"alpha"}
    assert keys(palace.for_agent("beta").query(text, top_k=3)) == set(shared)


class LooseBackend(JsonBackend):
    """A backend (as a plugin might be) that ignores ``where``: it answers every query and
    count as if nothing were filtered."""

    def query(self, collection: str, vector: Any, top_k: int, where: Where | None) -> list[Memory]:
        return super().query(collection, vector, top_k, None)

    def count(self, collection: str, where: Where | None = None) -> int:
        return super().count(collection, None)


def test_a_backend_that_ignores_where_shows_a_view_no_more(home: HomePaths) -> None:
    palace = MemoryPalace(
        LooseBackend(home.root / "loose"), embedder("hash"), bus=aios.bus(), paths=home
    )
    alpha, beta = palace.for_agent("alpha"), palace.for_agent("beta")
    text = "tool search timed out"
    alpha.store_many((f"alpha-{n}", f"{text} after {word(n)}", None) for n in range(100))
    alpha.store("alpha-secret", SECRET)
    shared = {"s-1": "searching took too long", "s-2": "no answer from search"}
    palace.store_many((key, value, None) for key, value in shared.items())
    beta.store("beta-note", "beta's search timed out once")

    # The nearest hundred are alpha's: beta still gets its top 3, and nothing of alpha's.
    assert keys(beta.query(text, top_k=3)) == {*shared, "beta-note"}
    assert keys(beta.query(SECRET, top_k=MAX_TOP_K)) == {*shared, "beta-note"}
    assert beta.query(SECRET, where={"owner": "alpha"}) == []
    assert keys(palace.query(text, top_k=5, where={"owner": "shared"})) == set(shared)
    assert (beta.count(), palace.shared_only().count(), palace.count()) == (3, 2, 104)


# ------------------------------------------------------------------ shared is no agent
def test_shared_names_no_agent_and_its_view_only_reads(palace: MemoryPalace) -> None:
    palace.store("runbook", RUNBOOK)  # the operator's: every agent sees it
    palace.store("alpha-note", "alpha's own note", owner="alpha")
    for make in (
        lambda: palace.for_agent("shared"),
        lambda: MemoryPalace.open("notes", paths=palace.paths, agent="shared"),
        lambda: palace.share("alpha-note", "shared"),
    ):
        with pytest.raises(MemoryInputError, match="'shared'"):
            make()

    common = palace.shared_only()
    assert keys(common.query(RUNBOOK, top_k=MAX_TOP_K)) == {"runbook"}
    assert common.get("alpha-note") is None and common.count() == 1
    for change in (
        lambda: common.delete("runbook"),
        lambda: common.store("runbook", "nothing to do"),
        lambda: common.store("everyone", "every agent would see this"),
        lambda: common.link("runbook", "alpha-note", "about"),
    ):
        with pytest.raises(MemoryAccessError, match="only reads"):
            change()
    with pytest.raises(MemoryAccessError, match="cannot become"):
        common.for_agent("alpha")
    kept = palace.get("runbook")
    assert kept is not None and kept.text == RUNBOOK and palace.get("everyone") is None


# ------------------------------------------------------------------ sharing and linking
def test_sharing_reaches_exactly_the_agent_it_names(palace: MemoryPalace) -> None:
    alpha, beta, gamma = (palace.for_agent(name) for name in ("alpha", "beta", "gamma"))
    alpha.store("alpha-plan", "alpha plans to migrate the queue to redis streams")
    alpha.share("alpha-plan", "beta")
    seen = beta.get("alpha-plan")
    assert seen is not None and seen.owner == "alpha"
    assert seen.shared_with == ()  # whom else alpha shares it with is alpha's business
    assert "alpha-plan" in keys(beta.query("queue migration", top_k=MAX_TOP_K))
    assert gamma.get("alpha-plan") is None
    assert "alpha-plan" not in keys(gamma.query("queue migration", top_k=MAX_TOP_K))
    mine = alpha.get("alpha-plan")
    assert mine is not None and mine.shared_with == ("beta",)

    # Seeing it is not owning it.
    with pytest.raises(MemoryAccessError, match="alpha's, not beta's"):
        beta.share("alpha-plan", "gamma")
    with pytest.raises(MemoryAccessError, match="alpha's, not beta's"):
        beta.delete("alpha-plan")
    with pytest.raises(MemoryAccessError, match="taken by a memory beta does not own"):
        beta.store("alpha-plan", "beta's plan")
    beta.store("beta-task", "beta moves its consumers to the new queue")
    with pytest.raises(MemoryAccessError, match="alpha's, not beta's"):
        beta.link("alpha-plan", "beta-task", "informs")  # only alpha puts its memory into others

    # Storing it again keeps the share; taking it back ends it.
    alpha.store("alpha-plan", "alpha plans to migrate the queue to redis streams in May")
    assert beta.get("alpha-plan") is not None
    alpha.unshare("alpha-plan", "beta")
    assert beta.get("alpha-plan") is None
    assert "alpha-plan" not in keys(beta.query("queue migration", top_k=MAX_TOP_K))
    palace.store("runbook", RUNBOOK)
    with pytest.raises(MemoryInputError, match="every agent sees it"):
        palace.share("runbook", "beta")
    recorded = [e for e in aios.bus().log.events() if e.type.startswith("memory.")]
    assert [(e.type, e.payload["agent"], e.payload["by"]) for e in recorded] == [
        ("memory.shared", "beta", "alpha"),
        ("memory.unshared", "beta", "alpha"),
    ]


def test_linking_into_an_agents_memory_shows_it_to_that_agent_only(palace: MemoryPalace) -> None:
    alpha, beta, gamma = (palace.for_agent(name) for name in ("alpha", "beta", "gamma"))
    alpha.store("alpha-plan", "alpha plans to migrate the queue to redis streams")
    alpha.store("alpha-diary", "alpha's notes on the migration")
    beta.store("beta-task", "beta moves its consumers to the new queue")
    palace.store("runbook", "how to migrate a queue")

    # A link into a shared memory shares nothing (that is what share is for), and links
    # between memories that are not the view's own are not its to make.
    alpha.link("alpha-diary", "runbook", "see_also")
    assert gamma.get("alpha-diary") is None and beta.get("alpha-diary") is None
    assert gamma.neighbors("runbook") == []
    assert [n.key for n in alpha.neighbors("runbook")] == ["alpha-diary"]
    palace.store("faq", "queue questions")
    with pytest.raises(MemoryAccessError, match="every agent's"):
        gamma.link("faq", "runbook", "see_also")

    # The operator links alpha's plan into beta's task: beta sees it, and only beta.
    palace.link("alpha-plan", "beta-task", "informs")
    assert beta.get("alpha-plan") is not None
    assert "alpha-plan" in keys(beta.query("redis streams", top_k=MAX_TOP_K))
    assert [(n.key, n.direction) for n in beta.neighbors("beta-task")] == [("alpha-plan", "in")]
    assert gamma.get("alpha-plan") is None and gamma.neighbors("beta-task") == []
    assert "alpha-plan" not in keys(gamma.query("redis streams", top_k=MAX_TOP_K))
    # A walk never passes through what the view does not see: the shared runbook is three
    # links from beta's task, but the way there leads through alpha's diary.
    palace.link("alpha-plan", "alpha-diary", "details")
    assert [n.key for n in beta.neighbors("beta-task", depth=3)] == ["alpha-plan"]
    assert [n.key for n in palace.neighbors("beta-task", depth=3)] == [
        "alpha-plan",
        "alpha-diary",
        "runbook",
    ]

    # Unlinking (the owner of either end may), or deleting the memory it was linked into,
    # takes it back.
    with pytest.raises(MemoryAccessError, match="no such memory for gamma"):
        gamma.unlink("alpha-plan", "beta-task", "informs")
    beta.unlink("alpha-plan", "beta-task", "informs")
    assert beta.get("alpha-plan") is None
    beta.share("beta-task", "alpha")  # so that alpha may link into it itself
    alpha.link("alpha-plan", "beta-task", "informs")
    assert beta.get("alpha-plan") is not None and gamma.get("alpha-plan") is None
    assert beta.delete("beta-task") is True
    assert beta.get("alpha-plan") is None
    assert "beta-task" not in [n.key for n in palace.neighbors("alpha-plan")]


def test_a_link_and_its_grant_belong_to_one_collection(palace: MemoryPalace) -> None:
    """The same keys linked the same way in two collections are two links: deleting or
    unlinking in one leaves the other standing, with what it lets its agent see, and a walk
    follows its own collection's links only."""
    other = MemoryPalace(
        palace.backend, palace.embedding, bus=palace.bus, paths=palace.paths, collection="other"
    )
    for place in (palace, other):
        place.store(
            "alpha-plan", "alpha plans to migrate the queue to redis streams", owner="alpha"
        )
        place.store("beta-task", "beta moves its consumers to the new queue", owner="beta")
        place.store("runbook", RUNBOOK)
        place.link("alpha-plan", "beta-task", "informs")
    palace.link("beta-task", "runbook", "see_also")
    assert [n.key for n in other.neighbors("beta-task", depth=2)] == ["alpha-plan"]
    assert [n.key for n in palace.neighbors("beta-task")] == ["alpha-plan", "runbook"]

    assert other.for_agent("beta").delete("beta-task") is True
    assert other.for_agent("beta").get("alpha-plan") is None  # its link went with it
    assert palace.for_agent("beta").get("alpha-plan") is not None  # this one stands
    assert [n.key for n in palace.for_agent("beta").neighbors("beta-task", "informs")] == [
        "alpha-plan"
    ]

    other.store("beta-task", "beta's task again", owner="beta")
    other.link("alpha-plan", "beta-task", "informs")
    palace.unlink("alpha-plan", "beta-task", "informs")
    assert palace.for_agent("beta").get("alpha-plan") is None
    assert palace.neighbors("alpha-plan") == []
    assert other.for_agent("beta").get("alpha-plan") is not None
    assert [n.key for n in other.neighbors("alpha-plan")] == ["beta-task"]


def test_a_key_taken_over_by_another_owner_keeps_none_of_the_old_grants(
    palace: MemoryPalace,
) -> None:
    """An agent stores a placeholder under a key another agent's memory will get, and links
    it into a third agent's memory: when the operator stores the real memory there, neither
    the placeholder's owner nor the agent it was linked into sees it."""
    squatter, third = palace.for_agent("mallory"), palace.for_agent("gamma")
    third.store("gamma-note", "gamma's note")
    third.share("gamma-note", "mallory")
    squatter.store("lesson-0123456789ab", "placeholder")
    squatter.link("lesson-0123456789ab", "gamma-note", "about")
    assert third.get("lesson-0123456789ab") is not None  # the link's grant, as meant
    palace.store("lesson-0123456789ab", SECRET, owner="alpha")
    for view in (squatter, third):
        assert view.get("lesson-0123456789ab") is None
        assert "lesson-0123456789ab" not in keys(view.query(SECRET, MAX_TOP_K))
    assert palace.neighbors("lesson-0123456789ab") == []  # the placeholder's link went too
    alpha = palace.for_agent("alpha").get("lesson-0123456789ab")
    assert alpha is not None and alpha.value == SECRET


def test_a_fresh_process_keeps_the_isolation(palace: MemoryPalace, home: HomePaths) -> None:
    alpha = palace.for_agent("alpha")
    alpha.store("alpha-secret", SECRET)
    alpha.store("alpha-plan", "alpha plans to migrate the queue to redis streams")
    alpha.share("alpha-plan", "beta")
    palace.store("runbook", RUNBOOK)
    out = child(
        home,
        palace.backend.name,
        "import json\n"
        "beta = MemoryPalace.open('notes', agent='beta')\n"
        f"found = sorted(m.key for m in beta.query({SECRET!r}, top_k=100))\n"
        "print(json.dumps([found, beta.get('alpha-secret') is None, beta.count()]))",
    )
    assert json.loads(out) == [["alpha-plan", "runbook"], True, 2]


def _store_before_owners(home: HomePaths, backend: str) -> None:
    """Memories as AIOS stored them before owners: one without an owner, one owned by alpha."""
    texts = ["the old runbook for the billing key", "alpha's old billing key notes"]
    if backend == "json":
        palace = MemoryPalace.open("notes", paths=home)
        palace.store("old-note", texts[0])
        palace.store("old-private", texts[1], owner="alpha")
        path = home.root / "memory" / "notes.json"
        data = json.loads(path.read_text())
        del data["items"]["old-note"]["metadata"]["owner"]
        path.write_text(json.dumps(data))
        return
    code = (
        "import chromadb, aios.memory.chroma_backend as cb\n"
        "from chromadb.config import Settings\n"
        "from chromadb.utils.embedding_functions import known_embedding_functions\n"
        "cb._register()\n"
        f"client = chromadb.PersistentClient(path={str(home.root / 'chroma')!r},"
        " settings=Settings(anonymized_telemetry=False))\n"
        "c = client.create_collection('notes.aios-hash',"
        " embedding_function=known_embedding_functions['aios-hash'](),"
        " configuration={'hnsw': {'space': 'cosine'}})\n"
        f"c.add(ids=['old-note', 'old-private'], documents={texts!r},"
        " metadatas=[{'state': 'kept'}, {'owner': 'alpha'}])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_memories_stored_before_owners_are_shared(
    home: HomePaths, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    monkeypatch.setenv("AIOS_MEMORY__BACKEND", backend)
    monkeypatch.setenv("AIOS_MEMORY__EMBEDDING", "hash")
    _store_before_owners(home, backend)
    beta = MemoryPalace.open("notes", paths=home, agent="beta")
    assert keys(beta.query("billing key", top_k=10)) == {"old-note"}
    old = beta.get("old-note")
    assert old is not None and old.owner == "shared"
    assert beta.get("old-private") is None
    assert keys(MemoryPalace.open("notes", paths=home).query("billing key", top_k=10)) == {
        "old-note",
        "old-private",
    }


# ------------------------------------------------------------------ lessons
TIMEOUT = "TimeoutError: tool search timed out after <n>s (req <hex>)"
WRITER_ONLY = {
    "type": "task.failed",
    "conditions": [{"path": "labels.agent", "op": "eq", "value": "writer"}],
}
LIMITS = {"max_runs": 50, "flap_count": 100, "failures_to_open": 10}


@pytest.fixture
def lessons_home(
    home: HomePaths, tmp_path: Path, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> HomePaths:
    """A home with the writer's timeout fix loaded (lessons name loaded playbooks only)."""
    monkeypatch.setenv("AIOS_MEMORY__EMBEDDING", "hash")
    directory = tmp_path / "playbooks"
    directory.mkdir()
    pb = fixes(config_file, "raise_interval", trigger=WRITER_ONLY, limits=LIMITS)
    (directory / "raise_interval.json").write_text(
        json.dumps(pb.model_dump(mode="json", exclude_none=True))
    )
    monkeypatch.setenv("AIOS_REACTOR__PLAYBOOK_DIRS", json.dumps([str(directory)]))
    return home


def timeout_of(agent: str) -> Event:
    [event] = failures(
        1,
        agent=agent,
        message="tool search timed out after {n}s waiting for the index",
        start=datetime.now(UTC) - timedelta(minutes=1),
    )
    return event


def test_a_lesson_of_one_agent_is_applied_to_its_failures_only(
    lessons_home: HomePaths, root: Path, config_file: Path
) -> None:
    from aios.config import load_config
    from aios.lessons.apply import ProvenFixes
    from aios.lessons.extract import run_pass
    from aios.lessons.index import LessonIndex
    from aios.lessons.model import lesson_id
    from aios.playbooks.matcher import PlaybookIndex

    home = lessons_home
    pb = fixes(config_file, "raise_interval", trigger=WRITER_ONLY, limits=LIMITS)
    for event in failures(3, start=datetime.now(UTC) - timedelta(hours=3)):
        config_file.write_text('{"heartbeat": {"interval": 60}, "retries": 1}\n')
        assert remediate(home, root, pb, event).status == "succeeded"
    run_pass(home)
    lid = lesson_id(TIMEOUT, "writer")
    playbooks = PlaybookIndex([pb])

    def proven_fix(event: Event) -> str | None:
        """What the optimizer's lesson lookup offers for ``event`` (a fresh index each time,
        as each plan has)."""
        threshold = load_config(home).lessons.similarity or 0.4
        fix = ProvenFixes(LessonIndex.open(home), playbooks, threshold)(event)
        return None if fix is None else fix.lesson_id

    crawler, writer = timeout_of("crawler"), timeout_of("writer")
    [hit] = LessonIndex.open(home).similar(crawler.payload["error"], 1)
    assert (hit.lesson_id, hit.owner) == (lid, "writer") and hit.similarity >= 0.4
    assert proven_fix(writer) == lid
    assert proven_fix(crawler) is None
    assert LessonIndex.open(home).similar(crawler.payload["error"], 10, agent="crawler") == []

    # The crawler's own repeats of it become a lesson that does not borrow the writer's fix.
    failures(
        3,
        agent="crawler",
        message="tool search timed out waiting {n}s for a reply",
        start=datetime.now(UTC) - timedelta(minutes=30),
    )
    [made] = run_pass(home).created
    assert made.owner == "crawler" and made.fix is None

    # The CLI as crawler sees none of the writer's; as the operator, whose each one is.
    env = {"AIOS_MEMORY__EMBEDDING": "hash"}
    text = "the search tool did not answer in time"
    as_crawler = run_aios(
        "lessons", "search", text, "--agent", "crawler", "--json", home=home, env=env
    )
    assert as_crawler.returncode == 0, as_crawler.stderr
    found = [(h["lesson_id"], h["owner"]) for h in json.loads(as_crawler.stdout)]
    assert found == [(made.lesson_id, "crawler")]
    listed = run_aios("lessons", "list", "--agent", "crawler", "--json", home=home, env=env)
    assert [item["lesson_id"] for item in json.loads(listed.stdout)] == [made.lesson_id]
    hidden = run_aios("lessons", "show", lid, "--agent", "crawler", home=home, env=env)
    assert hidden.returncode == 2 and "no such lesson" in hidden.stderr
    shown = json.loads(run_aios("lessons", "show", lid, "--json", home=home, env=env).stdout)
    assert shown["owner"] == "writer"
    table = run_aios("lessons", "list", home=home, env=env)
    assert "owner" in table.stdout and "crawler" in table.stdout

    # Another agent's same failure shares nothing; the operator sharing it does, until unshared.
    failures(3, agent="reader", start=datetime.now(UTC) - timedelta(minutes=10))
    run_pass(home)
    assert proven_fix(crawler) is None
    shared = run_aios("lessons", "share", lid[:12], "crawler", home=home, env=env)
    assert shared.returncode == 0, shared.stderr
    assert proven_fix(crawler) == lid and proven_fix(timeout_of("reader")) is None
    listed = run_aios("lessons", "list", "--agent", "crawler", "--json", home=home, env=env)
    assert {item["lesson_id"] for item in json.loads(listed.stdout)} == {lid, made.lesson_id}
    # Whom else the writer's lesson is shared with is not the crawler's to see.
    assert run_aios("lessons", "share", lid, "reader", home=home, env=env).returncode == 0
    seen = run_aios("lessons", "show", lid, "--agent", "crawler", "--json", home=home, env=env)
    assert json.loads(seen.stdout)["shared_with"] == [] and "reader" not in seen.stdout
    whole = json.loads(run_aios("lessons", "show", lid, "--json", home=home, env=env).stdout)
    assert whole["shared_with"] == ["crawler", "reader"]
    # The writer's remediations that judged it, and why, stay the writer's.
    judged = [h["payload"] for h in whole["history"] if h["type"] == "lesson.verified"]
    assert judged and all("remediation_id" in j and "reason" in j for j in judged)
    theirs = [h["payload"] for h in json.loads(seen.stdout)["history"]]
    assert theirs and not [j for j in theirs if "remediation_id" in j or "reason" in j]
    assert any(j.get("to") == "verified" for j in theirs)  # the verdict itself is shown
    assert run_aios("lessons", "unshare", lid, "crawler", home=home, env=env).returncode == 0
    assert proven_fix(crawler) is None
    again = run_aios("lessons", "unshare", lid, "crawler", home=home, env=env)
    assert again.returncode == 2 and "not shared with 'crawler'" in again.stderr


def test_an_index_from_before_owners_shows_agents_only_what_the_table_gives_them(
    lessons_home: HomePaths,
) -> None:
    from aios.lessons.extract import run_pass
    from aios.lessons.index import INDEX_CONSUMER, LessonIndex
    from aios.lessons.model import lesson_id
    from aios.store import open_store
    from aios.store.consumers import set_position

    home = lessons_home
    failures(3, start=datetime.now(UTC) - timedelta(hours=1))
    run_pass(home)
    index = LessonIndex.open(home)
    # As a lesson index made before owners holds it: shared.
    [stale] = index.palace.query("tool search timed out", 1)
    assert stale.owner == "writer"
    index.palace.store(stale.key, stale.value, metadata=stale.metadata, owner="shared")
    assert LessonIndex.open(home).similar("search timed out", 5, agent="crawler") == []
    # The next sync (after an upgrade, the renamed consumer starts at 0) puts it right.
    with open_store(home) as con:
        set_position(con, INDEX_CONSUMER, 0)
    LessonIndex.open(home).sync(home)
    restored = index.palace.get(lesson_id(TIMEOUT, "writer"))
    assert restored is not None and restored.owner == "writer"


TOKEN = "sk_live_ALPHA_PRIVATE_TOKEN"


def key_errors(agent: str, key: str, count: int, ago: timedelta) -> list[Event]:
    """``count`` failures of ``agent``: a KeyError naming ``key`` (``KeyError: <str>``)."""
    return failures(
        count,
        agent=agent,
        error_type="KeyError",
        message=f"'{key}'",
        start=datetime.now(UTC) - ago,
    )


def views_show(home: HomePaths, agent: str, *args: str) -> str:
    """What ``aios lessons ARGS --agent AGENT --json`` prints (it must succeed)."""
    env = {"AIOS_MEMORY__EMBEDDING": "hash"}
    done = run_aios("lessons", *args, "--agent", agent, "--json", home=home, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_one_agents_failure_text_never_reaches_another_through_a_lesson(
    lessons_home: HomePaths,
) -> None:
    from aios.lessons.extract import run_pass
    from aios.lessons.index import LessonIndex
    from aios.lessons.model import lesson_id
    from aios.lessons.projection import read_lessons
    from aios.store import open_store

    home, sig = lessons_home, "KeyError: <str>"
    key_errors("alpha", f"{TOKEN}_{{n}}", 3, timedelta(hours=2))
    [alphas] = run_pass(home).created
    assert (alphas.lesson_id, alphas.owner) == (lesson_id(sig, "alpha"), "alpha")
    assert TOKEN in alphas.symptom  # what alpha's own lesson keeps, for alpha and the operator

    # Beta fails the same way: once changes nothing of alpha's; three times make beta's own.
    key_errors("beta", "x", 1, timedelta(minutes=50))
    assert run_pass(home).updated == []
    key_errors("beta", "x", 2, timedelta(minutes=40))
    [betas] = run_pass(home).created
    assert (betas.lesson_id, betas.owner, betas.symptom) == (
        lesson_id(sig, "beta"),
        "beta",
        "'x'",
    )
    with open_store(home) as con:
        owners = {lesson.lesson_id: lesson.owner for lesson in read_lessons(con)}
    assert owners == {alphas.lesson_id: "alpha", betas.lesson_id: "beta"}

    # Nothing of alpha's in what beta, another agent or the shared view are shown.
    for agent in ("beta", "crawler", "shared"):
        seen = [
            views_show(home, agent, "list"),
            views_show(home, agent, "search", f"KeyError {TOKEN}", "--top", "100"),
        ]
        assert TOKEN not in "".join(seen) and alphas.lesson_id not in "".join(seen)
        hidden = run_aios("lessons", "show", alphas.lesson_id, "--agent", agent, home=home)
        assert hidden.returncode == 2 and "no such lesson" in hidden.stderr
    shown = json.loads(views_show(home, "beta", "show", betas.lesson_id))
    assert shown["owner"] == "beta" and TOKEN not in json.dumps(shown)
    index = LessonIndex.open(home).palace
    for view in (index.for_agent("beta"), index.shared_only()):
        assert not [m for m in view.query(TOKEN, top_k=MAX_TOP_K) if TOKEN in m.text]
    assert TOKEN in json.dumps(json.loads(views_show(home, "alpha", "show", alphas.lesson_id)))


def test_lessons_recorded_before_owners_keep_one_agents_text_to_it(lessons_home: HomePaths) -> None:
    """A log written when a lesson seen by a second agent became shared: replayed, the lesson
    stays its first agent's; one made from two agents' failures at once is shared but keeps
    only the signature."""
    home, bus, sig = lessons_home, aios.bus(), "KeyError: <str>"
    when = {"first": datetime.now(UTC).isoformat(), "last": datetime.now(UTC).isoformat()}
    made = {"signature": sig, "symptom": f"'{TOKEN}_1'", "count": 3, "fix": None, **when}
    bus.emit(
        "lesson.created",
        {"lesson_id": "lesson-0000000000a1", "agents": ["alpha"], **made},
        source="aios.lessons",
    )
    bus.emit(
        "lesson.updated",
        {"lesson_id": "lesson-0000000000a1", "count": 4, "agents": ["alpha", "beta"]},
        source="aios.lessons",
    )
    bus.emit(
        "lesson.created",
        {
            "lesson_id": "lesson-0000000000b2",
            "agents": ["alpha", "beta"],
            "sample_event_id": "alpha-failure-1",
            **made,
        },
        source="aios.lessons",
    )
    assert run_aios("lessons", "reindex", home=home).returncode == 0
    [seen] = json.loads(views_show(home, "beta", "list"))
    assert (seen["lesson_id"], seen["owner"], seen["symptom"]) == (
        "lesson-0000000000b2",
        "shared",
        sig,
    )
    assert (seen["agents"], seen["sample_event_id"]) == ([], None)
    for agent in ("beta", "crawler"):
        shown = views_show(home, agent, "show", "lesson-0000000000b2")
        found = views_show(home, agent, "search", TOKEN, "--top", "100")
        assert TOKEN not in shown + found and "alpha" not in shown + found
        hidden = run_aios("lessons", "show", "lesson-0000000000a1", "--agent", agent, home=home)
        assert hidden.returncode == 2 and "no such lesson" in hidden.stderr
    first = json.loads(views_show(home, "alpha", "show", "lesson-0000000000a1"))
    assert (first["owner"], first["agents"], first["count"]) == ("alpha", ["alpha"], 4)
    assert "beta" not in json.dumps(first["history"])


def test_a_failure_labelled_shared_makes_no_agents_lesson(lessons_home: HomePaths) -> None:
    from aios.lessons.apply import agent_of
    from aios.lessons.extract import run_pass
    from aios.lessons.model import lesson_id

    events = key_errors("shared", "x", 3, timedelta(hours=1))
    assert agent_of(events[0]) == "shared"  # offered the shared lessons only
    [made] = run_pass(lessons_home).created
    assert (made.lesson_id, made.owner, made.agents) == (
        lesson_id("KeyError: <str>", "shared"),
        "shared",
        [],
    )
    refused = run_aios("lessons", "share", made.lesson_id, "shared", home=lessons_home)
    assert refused.returncode == 2 and "reserved" in refused.stderr
