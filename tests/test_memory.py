"""The memory palace on real Chroma (embedded, in a temporary AIOS_HOME) and on JSON files:
the offline embedding, store / get / query / where / delete, links walked in DuckDB, and what
another process sees."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from aios.config import AIOSConfig
from aios.home import HomePaths
from aios.memory.embedding import HashEmbedding, embedder, tokens
from aios.memory.palace import MemoryPalace
from aios.memory.records import MemoryInputError, matches

BACKENDS = ["chroma", "json"]


@pytest.fixture(params=BACKENDS)
def palace(
    request: pytest.FixtureRequest, home: HomePaths, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MemoryPalace]:
    monkeypatch.setenv("AIOS_MEMORY__BACKEND", request.param)
    monkeypatch.setenv("AIOS_MEMORY__EMBEDDING", "hash")
    yield MemoryPalace.open("notes", paths=home)


def child(home: HomePaths, backend: str, code: str) -> str:
    """Run ``code`` in a fresh interpreter on ``home`` with ``backend``; its stdout."""
    env_code = (
        "import os\n"
        f"os.environ['AIOS_HOME'] = {str(home.root)!r}\n"
        f"os.environ['AIOS_MEMORY__BACKEND'] = {backend!r}\n"
        "os.environ['AIOS_MEMORY__EMBEDDING'] = 'hash'\n"
        "from aios.memory import MemoryPalace\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", env_code + code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


# ------------------------------------------------------------------ the offline embedding
def test_the_hash_embedding_is_the_same_in_another_process() -> None:
    text = "TimeoutError: tool web_search timed out after 30s"
    here = HashEmbedding().vector(text)
    there = subprocess.run(
        [
            sys.executable,
            "-c",
            "from aios.memory.embedding import HashEmbedding\n"
            f"print(HashEmbedding().vector({text!r}).tobytes().hex())",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    assert here.tobytes().hex() == there
    assert abs(float(np.linalg.norm(here)) - 1.0) < 1e-5


def test_the_ops_vocabulary_brings_different_wordings_together() -> None:
    e = HashEmbedding()

    def similarity(a: str, b: str) -> float:
        return float(e.vector(a) @ e.vector(b))

    lesson = "TimeoutError: tool web_search timed out after 30s"
    assert similarity(lesson, "deadline exceeded calling web_search") > similarity(
        lesson, "disk is full, log writes failing"
    )
    oom = "MemoryError: out of memory while loading embeddings"
    assert similarity(oom, "worker killed by the kernel OOM killer") > similarity(
        oom, "rate limited by the provider"
    )
    assert "timeout_" in tokens("the call TimedOut") and "oom_" in tokens("OOM")


def test_unknown_embedding_or_missing_model_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(Exception, match="use auto, hash or minilm"):
        embedder("bert")
    import aios.memory.embedding as module

    monkeypatch.setattr(module, "sentence_model_installed", lambda: False)
    module._EMBEDDERS.pop("minilm", None)
    with pytest.raises(Exception, match="sentence model is not installed"):
        embedder("minilm")
    assert embedder("auto").name == "aios-hash"


# ------------------------------------------------------------------ memories
def test_store_get_query_and_delete(palace: MemoryPalace) -> None:
    palace.store("pg-refused", "postgres refused connections after the upgrade")
    palace.store("disk-full", {"text": "no space left on /var", "fix": "cleanup"})
    palace.store("api-429", "rate limited by the LLM provider", metadata={"state": "verified"})
    assert palace.count() == 3
    best = palace.query("database connection refused", top_k=2)
    assert best[0].key == "pg-refused"
    assert best[0].similarity is not None and best[0].similarity > best[1].similarity  # type: ignore[operator]
    got = palace.get("disk-full")
    assert got is not None and got.value == {"fix": "cleanup", "text": "no space left on /var"}
    assert got.text == "no space left on /var" and got.owner == "shared"
    palace.store("disk-full", "filesystem full again")  # the same key: replaced
    assert palace.count() == 3 and palace.get("disk-full").text == "filesystem full again"  # type: ignore[union-attr]
    assert palace.delete("disk-full") is True and palace.delete("disk-full") is False
    assert palace.get("disk-full") is None and palace.count() == 2


def test_where_filters_the_answer(palace: MemoryPalace) -> None:
    palace.store_many(
        [
            (f"timeout-{n}", f"tool search timed out after {n}s", {"state": state, "n": n})
            for n, state in enumerate(["draft", "verified", "hardened", "draft"] * 20)
        ]
    )
    proven = palace.query("search timeout", 5, where={"state": {"$in": ["verified", "hardened"]}})
    assert len(proven) == 5 and {m.metadata["state"] for m in proven} <= {"verified", "hardened"}
    few = palace.query("search timeout", 3, where={"$and": [{"state": "draft"}, {"n": {"$lt": 5}}]})
    assert sorted(m.key for m in few) == ["timeout-0", "timeout-3", "timeout-4"]
    assert palace.query("search timeout", 3, where={"state": "gone"}) == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: p.store("", "x"), "key ''"),
        (lambda p: p.store("a b", "x"), "key 'a b'"),
        (lambda p: p.store("k", "   "), "nothing to remember"),
        (lambda p: p.store("k", 42), "a string or a JSON object"),
        (lambda p: p.store("k", "x", metadata={"owner": "me"}), "metadata.owner: reserved"),
        (lambda p: p.store("k", "x", metadata={"tags": ["a"]}), "metadata.tags"),
        (lambda p: p.query(""), "some text"),
        (lambda p: p.query("x", top_k=0), "top_k"),
        (lambda p: p.query("x", where={"state": {"$like": "a"}}), "unknown operator '\\$like'"),
        (lambda p: p.query("x", where={"$or": [{"a": 1}]}), "where.\\$or"),
        (lambda p: p.link("a", "a", "same"), "not linked to itself"),
        (lambda p: p.link("a", "b", "Fixed By"), "relation 'Fixed By'"),
        (lambda p: p.neighbors("a", depth=0), "depth"),
    ],
)
def test_bad_input_is_refused_naming_what_is_wrong(
    palace: MemoryPalace, call: object, message: str
) -> None:
    with pytest.raises(MemoryInputError, match=message):
        call(palace)  # type: ignore[operator]
    assert palace.count() == 0


def test_where_semantics() -> None:
    meta = {"state": "draft", "n": 3, "ok": True}
    assert matches(meta, {"n": 3.0}) and not matches(meta, {"n": "3"})
    assert matches(meta, {"missing": {"$ne": 1}}) and not matches(meta, {"missing": 1})
    assert not matches(meta, {"ok": 1}) and matches(meta, {"ok": True})
    assert matches(meta, {"$or": [{"n": {"$gt": 5}}, {"state": {"$in": ["draft"]}}]})
    assert not matches(meta, {"n": {"$gt": "a"}})


# ------------------------------------------------------------------ another process
def word(n: int) -> str:
    """A made-up word of its own for each ``n`` (the embedding ignores digits)."""
    letters = "".join(chr(97 + (n // 26**i) % 26) for i in range(3))
    return f"z{letters}q"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_fresh_process_sees_what_another_added(
    home: HomePaths, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    monkeypatch.setenv("AIOS_MEMORY__BACKEND", backend)
    monkeypatch.setenv("AIOS_MEMORY__EMBEDDING", "hash")
    here = MemoryPalace.open("notes", paths=home)
    # Enough memories that Chroma has built (and persisted) its index before the other process
    # adds one: a long-lived client would keep answering from its own copy.
    here.store_many([(f"filler-{n}", f"routine note about {word(n)}", None) for n in range(1200)])
    assert here.query("routine note", 1)[0].key.startswith("filler-")
    out = child(
        home,
        backend,
        "p = MemoryPalace.open('notes')\n"
        "p.store('oom', 'the summariser ran out of memory')\n"
        "print(p.count())",
    )
    assert out == "1201"
    [hit] = here.query("worker killed, out of memory", 1)
    assert hit.key == "oom" and here.count() == 1201
    seen = child(home, backend, "print(MemoryPalace.open('notes').get('filler-7').text)")
    assert seen == f"routine note about {word(7)}"


def test_any_process_can_open_the_chroma_collection_by_text(home: HomePaths) -> None:
    palace = MemoryPalace.open("notes", paths=home, config=_config(home, "chroma"))
    palace.store("ssl", "certificate verify failed: certificate has expired")
    code = (
        "import chromadb, aios.memory.chroma_backend as cb\n"
        "cb._register()\n"
        f"client = chromadb.PersistentClient(path={str(home.root / 'chroma')!r})\n"
        "collection = client.get_collection('notes.aios-hash')\n"
        "answer = collection.query(query_texts=['expired TLS certificate'], n_results=1)\n"
        "print(answer['ids'][0][0], collection.configuration_json['embedding_function']['name'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ssl", "aios-hash"]


def _config(home: HomePaths, backend: str) -> AIOSConfig:
    from aios.config import load_config

    config = load_config(home)
    return config.model_copy(
        update={
            "memory": config.memory.model_copy(update={"backend": backend, "embedding": "hash"})
        }
    )


# ------------------------------------------------------------------ links
def test_links_are_walked_both_ways_and_survive_a_new_process(
    palace: MemoryPalace, home: HomePaths
) -> None:
    palace.link("pg-refused", "restart-pg", "fixed_by")
    palace.link("restart-pg", "runbook-7", "documented_in")
    palace.link("pg-upgrade", "pg-refused", "caused")
    near = palace.neighbors("pg-refused")
    assert [(n.key, n.relation, n.direction) for n in near] == [
        ("pg-upgrade", "caused", "in"),
        ("restart-pg", "fixed_by", "out"),
    ]
    two = palace.neighbors("pg-refused", depth=2)
    assert [(n.key, n.depth) for n in two][-1] == ("runbook-7", 2)
    assert [n.key for n in palace.neighbors("pg-refused", "fixed_by", depth=3)] == ["restart-pg"]
    palace.unlink("pg-upgrade", "pg-refused", "caused")
    backend = palace.backend.name
    out = child(
        home,
        backend,
        "p = MemoryPalace.open('notes')\n"
        "print([n.key for n in p.neighbors('pg-refused', depth=2)])",
    )
    assert json.loads(out.replace("'", '"')) == ["restart-pg", "runbook-7"]


def test_deleting_a_memory_removes_its_links(palace: MemoryPalace) -> None:
    palace.store("restart-pg", "restart postgres and wait for it")
    palace.link("pg-refused", "restart-pg", "fixed_by")
    palace.link("restart-pg", "runbook-7", "documented_in")
    assert palace.delete("restart-pg")
    assert palace.neighbors("pg-refused") == [] and palace.neighbors("runbook-7") == []
