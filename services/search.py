"""Tool search: BM25F over a tool's fields, blended with static word embeddings when they are installed.

Lexical part. Text is split on snake_case / camelCase / kebab-case, lower-cased,
stripped of English stopwords and Snowball-stemmed (PyStemmer). A tool's
fields (name and title, server, description, the description's first sentence,
parameter names, parameter descriptions) are weighted into one bag of terms,
which BM25 (k1, b) scores against the query with one length normalization over
the weighted bag (the simple form of BM25F). Query terms are expanded with a
general-purpose list of software synonyms and abbreviations (folder/directory,
repo/repository, delete/remove ...) at half weight.

Semantic part. When the `wordllama` package is installed, its static 256-d
token vectors (mean-pooled, cosine) give every tool a similarity to the query
that catches paraphrases sharing no word with the tool. The final score blends
it with the max-normalized BM25 score. Without the package, search is BM25 only.

A query that names a tool (`server:tool`, `server__tool`, `tool`, without regard to case, `-`
or `_`; services/search_names.py) has that tool first, whatever the scores say.

The index is incremental: replacing one server's tools updates only the postings
of the terms those tools contain; a term's posting is turned into numpy arrays
for scoring on its first query after it changed.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt
import Stemmer

from services.search_names import NameTable

logger = logging.getLogger(__name__)

K1: Final = 1.2
B: Final = 0.75
FIELD_WEIGHTS: Final[Mapping[str, float]] = {
    "name": 3.0,
    "server": 1.5,
    "description": 1.0,
    "summary": 1.0,
    "params": 1.5,
    "param_docs": 0.5,
}
SYNONYM_WEIGHT: Final = 0.5
SEMANTIC_WEIGHT: Final = 0.3
EMBEDDINGS_ENV: Final = "MCPPROXY_SEARCH_EMBEDDINGS"
WORDLLAMA_TOKENIZER: Final = Path("tokenizers") / "l2_supercat_tokenizer_config.json"
WORDLLAMA_WEIGHTS: Final = Path("weights") / "l2_supercat_256.safetensors"

STOPWORDS: Final = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further get give
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just let me more most my myself no nor not now of off on once only or other our ours ourselves
    out over own please same she should so some such than that the their theirs them themselves then
    there these they this those through to too under until up very want was we were what when where
    which while who whom why will with would you your yours yourself yourselves also may might must
    shall need like tell s t d ll m re ve don""".split()
)

# General software vocabulary, written for any tool catalogue (not for one set of servers or queries):
# each line is a group of words that name the same thing; a query term brings in the rest of its groups.
SYNONYMS: Final = (
    "create make new add generate build init initialize",
    "delete remove erase drop destroy purge discard rm del unlink forget",
    "update modify change edit alter patch amend",
    "read view open show display cat print load",
    "write save store persist put record",
    "list enumerate ls browse",
    "search find lookup locate grep filter query",
    "move rename mv relocate",
    "copy duplicate clone cp",
    "run execute exec invoke launch",
    "fetch download retrieve scrape crawl",
    "send post publish submit",
    "stop halt kill terminate abort cancel",
    "undo revert rollback reset restore",
    "compare diff difference",
    "convert translate transform",
    "remember memorize recall memory",
    "think reason reasoning thought",
    "directory folder dir",
    "file document doc",
    "image picture photo png jpg jpeg gif screenshot img",
    "audio sound mp3 wav",
    "video movie mp4",
    "url link address uri href website webpage site",
    "web internet online http https",
    "repository repo",
    "database db",
    "row record entry",
    "column field",
    "history log",
    "commit revision changeset",
    "timezone tz zone",
    "time clock hour",
    "size bytes large big",
    "metadata info information details properties attributes stats",
    "config configuration settings preferences options",
    "entity node object item vertex",
    "relation relationship edge link connection association",
    "observation fact note",
    "message msg",
    "email mail",
    "password secret credential token",
    "error exception failure",
    "tree hierarchy nested",
    "modified changed",
    "permitted allowed authorized accessible",
    "several multiple many batch",
    "entire whole full complete",
    "current now present latest",
)

# A word is a run of letters and digits, cut at camelCase humps ("HTTPServer" -> HTTP, Server;
# "getTinyImage" -> get, Tiny, Image); a run with a non-ASCII letter is kept whole ("café").
_WORD_RE: Final = re.compile(r"(?=[^\W_]*[^\W\x00-\x7f])[^\W_]+|[A-Z]+(?=[A-Z][a-z])|[A-Z]*[a-z0-9]+|[A-Z]+")
_SENTENCE_END_RE: Final = re.compile(r"(?<=[.!?])\s|\n")
_STEMMER: Final = Stemmer.Stemmer("english")

FloatArray = npt.NDArray[np.float32]
SlotArray = npt.NDArray[np.int32]
_NO_SLOTS: Final[SlotArray] = np.zeros(0, np.int32)
_NO_WEIGHTS: Final[FloatArray] = np.zeros(0, np.float32)


def tokenize(text: str) -> list[str]:
    """Lower-cased words of `text`: split on snake_case, kebab-case, spaces and punctuation, and camelCase."""
    return [word.lower() for word in _WORD_RE.findall(text)]


def terms(text: str) -> list[str]:
    """The index terms of `text`: its words without stopwords, Snowball-stemmed."""
    stems: list[str] = _STEMMER.stemWords([word for word in tokenize(text) if word not in STOPWORDS])
    return stems


def _expansions(groups: Iterable[str]) -> dict[str, frozenset[str]]:
    related: dict[str, set[str]] = {}
    for group in groups:
        members = {found[0] for word in group.split() if len(found := terms(word)) == 1}
        for member in members:
            related.setdefault(member, set()).update(members - {member})
    return {term: frozenset(others) for term, others in related.items()}


EXPANSIONS: Final = _expansions(SYNONYMS)


def query_weights(query: str) -> dict[str, float]:
    """Each query term at weight 1, its synonyms at SYNONYM_WEIGHT."""
    weights = dict.fromkeys(terms(query), 1.0)
    for term in list(weights):
        for other in EXPANSIONS.get(term, ()):
            weights.setdefault(other, SYNONYM_WEIGHT)
    return weights


class ToolDoc(NamedTuple):
    """What the index reads of one tool."""

    name: str
    description: str = ""
    input_schema: Mapping[str, Any] | None = None
    title: str | None = None


@dataclass(frozen=True)
class Hit:
    server: str
    tool: str
    score: float


def _first_sentence(text: str) -> str:
    end = _SENTENCE_END_RE.search(text)
    return text[: end.start()] if end else text


def _param_texts(schema: Mapping[str, Any] | None) -> tuple[str, str]:
    props = (schema or {}).get("properties") or {}
    if not isinstance(props, dict):
        return "", ""
    names = " ".join(str(name) for name in props)
    docs = " ".join(str(p.get("description", "")) for p in props.values() if isinstance(p, dict))
    return names, docs


def weighted_terms(server: str, tool: ToolDoc) -> dict[str, float]:
    """The tool's bag of terms, each occurrence counted with its field's weight."""
    params, param_docs = _param_texts(tool.input_schema)
    # A title mostly restates the name ("read_file" / "Read File"): only its other words count.
    name_words = tokenize(tool.name)
    extra = [word for word in tokenize(tool.title or "") if word not in name_words]
    fields = {
        "name": " ".join(name_words + extra),
        "server": server,
        "description": tool.description,
        "summary": _first_sentence(tool.description),
        "params": params,
        "param_docs": param_docs,
    }
    weighted: dict[str, float] = {}
    for field, text in fields.items():
        weight = FIELD_WEIGHTS[field]
        for term in terms(text):
            weighted[term] = weighted.get(term, 0.0) + weight
    return weighted


def embedding_text(tool: ToolDoc) -> str:
    return f"{tool.title or ' '.join(tokenize(tool.name))}: {tool.description}"


class StaticEmbedder:
    """Text vectors as the normalized mean of static token vectors (WordLlama `l2_supercat`, 256-d).

    Only the data files of the installed `wordllama` package are read: importing it would configure
    logging, and its own loader looks for the tokenizer where the wheel does not put it and then
    tries to download it. Nothing here touches the network.
    """

    def __init__(self, tokenizer: Any, table: npt.NDArray[np.floating[Any]]) -> None:
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._tokenizer = tokenizer
        self._table = table
        self.dim: int = int(table.shape[1])

    @classmethod
    def load(cls) -> StaticEmbedder | None:
        """The embedder, or None (BM25 only) when it is disabled, not installed or unreadable."""
        if os.environ.get(EMBEDDINGS_ENV, "on").lower() in ("0", "off", "false", "no"):
            logger.info("tool search: embeddings disabled by %s; BM25 only", EMBEDDINGS_ENV)
            return None
        spec = importlib.util.find_spec("wordllama")
        if spec is None or not spec.submodule_search_locations:
            logger.info("tool search: wordllama is not installed; BM25 only")
            return None
        root = Path(next(iter(spec.submodule_search_locations)))
        try:
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(root / WORDLLAMA_TOKENIZER))
            table = load_file(str(root / WORDLLAMA_WEIGHTS))["embedding.weight"]
        # An optional component: whatever keeps it from loading (missing files, a changed layout,
        # a broken native library) leaves search on BM25 rather than failing the gateway.
        except Exception as exc:
            logger.warning("tool search: cannot load embeddings from %s (%s); BM25 only", root, exc)
            return None
        logger.info("tool search: BM25 + WordLlama embeddings (%s)", root / WORDLLAMA_WEIGHTS)
        return cls(tokenizer, table)

    def embed(self, texts: Sequence[str]) -> FloatArray:
        vectors = np.zeros((len(texts), self.dim), np.float32)
        last = self._table.shape[0] - 1
        encodings = self._tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        for row, encoding in enumerate(encodings):
            if encoding.ids:
                ids = np.minimum(np.asarray(encoding.ids, np.int64), last)
                mean = self._table[ids].mean(axis=0, dtype=np.float32)
                norm = float(np.linalg.norm(mean))
                if norm > 0:
                    vectors[row] = mean / norm
        return vectors


class ToolIndex:
    """Incremental search index keyed by (server, tool); see the module docstring for the ranking."""

    def __init__(self, embedder: StaticEmbedder | None = None) -> None:
        self.embedder = embedder
        self._slot_of: dict[tuple[str, str], int] = {}
        self._keys: list[tuple[str, str] | None] = []
        self._free: list[int] = []
        self._by_server: dict[str, list[int]] = {}
        self._terms_of: dict[int, tuple[str, ...]] = {}
        self._postings: dict[str, dict[int, float]] = {}
        self._arrays: dict[str, tuple[SlotArray, FloatArray]] = {}
        self._lengths: FloatArray = np.zeros(0, np.float32)
        self._vectors: FloatArray = np.zeros((0, embedder.dim if embedder else 0), np.float32)
        self._total_length = 0.0
        self._names = NameTable()

    def __len__(self) -> int:
        return len(self._slot_of)

    def replace_server(self, server: str, tools: Iterable[tuple[Any, ...]]) -> None:
        """Set the tools of `server`: ToolDoc fields, (name, description, input schema[, title])."""
        docs = list({doc.name: doc for doc in (ToolDoc(*tool) for tool in tools)}.values())
        self._drop(server)
        slots = []
        for doc in docs:
            slot = self._allocate((server, doc.name))
            weighted = weighted_terms(server, doc)
            self._terms_of[slot] = tuple(weighted)
            self._lengths[slot] = length = sum(weighted.values())
            self._total_length += length
            for term, weight in weighted.items():
                self._postings.setdefault(term, {})[slot] = weight
                self._arrays.pop(term, None)
            slots.append(slot)
        self._names.add(server, [doc.name for doc in docs])
        if slots:
            self._by_server[server] = slots
            if self.embedder is not None:
                self._vectors[slots] = self.embedder.embed([embedding_text(doc) for doc in docs])

    def remove_server(self, server: str) -> None:
        self.replace_server(server, [])

    def search(self, query: str, limit: int = 15) -> list[Hit]:
        weights = query_weights(query)
        count = len(self._slot_of)
        if not weights or not count or limit < 1:
            return []
        average = self._total_length / count
        used = len(self._keys)  # slots past this were never allocated
        scores = np.zeros(used, np.float32)
        for term, weight in weights.items():
            slots, tf = self._posting_arrays(term)
            if not len(slots):
                continue
            idf = math.log(1.0 + (count - len(slots) + 0.5) / (len(slots) + 0.5))
            saturation = K1 * (1.0 - B + B * self._lengths[slots] / average)
            scores[slots] += (weight * idf * (K1 + 1.0)) * tf / (tf + saturation)
        if self.embedder is not None:
            best = float(scores.max())
            lexical = scores / best if best > 0 else scores
            # einsum, not `@`: BLAS would spread this mat-vec over threads, and on a busy machine
            # waiting for them costs ten times the product itself at the 99th percentile.
            query_vector = self.embedder.embed([query])[0]
            semantic = np.maximum(np.einsum("ij,j->i", self._vectors[:used], query_vector), 0.0)
            scores = SEMANTIC_WEIGHT * semantic + (1.0 - SEMANTIC_WEIGHT) * lexical
        candidates = np.flatnonzero(scores > 0)  # free slots score 0: no postings, zero vectors
        if len(candidates) > limit:
            candidates = candidates[np.argpartition(-scores[candidates], limit - 1)[:limit]]
        ranked = sorted((-float(scores[slot]), self._keys[slot], int(slot)) for slot in candidates)
        hits = [Hit(key[0], key[1], round(-negative, 4)) for negative, key, _ in ranked if key is not None]
        named = self._names.named(query)
        if not named:
            return hits
        first = [Hit(*key, round(float(scores[self._slot_of[key]]), 4)) for key in named]
        taken = set(named)
        rest = [hit for hit in hits if (hit.server, hit.tool) not in taken]
        return (first + rest)[:limit]

    def _allocate(self, key: tuple[str, str]) -> int:
        if self._free:
            slot = self._free.pop()
            self._keys[slot] = key
        else:
            slot = len(self._keys)
            self._keys.append(key)
            if slot >= len(self._lengths):
                self._grow(max(64, 2 * len(self._lengths)))
        self._slot_of[key] = slot
        return slot

    def _grow(self, capacity: int) -> None:
        extra = capacity - len(self._lengths)
        self._lengths = np.concatenate([self._lengths, np.zeros(extra, np.float32)])
        self._vectors = np.concatenate([self._vectors, np.zeros((extra, self._vectors.shape[1]), np.float32)])

    def _drop(self, server: str) -> None:
        for slot in self._by_server.pop(server, []):
            key = self._keys[slot]
            assert key is not None
            self._names.remove(*key)
            del self._slot_of[key]
            self._keys[slot] = None
            self._free.append(slot)
            self._total_length -= float(self._lengths[slot])
            self._lengths[slot] = 0.0
            self._vectors[slot] = 0.0
            for term in self._terms_of.pop(slot):
                posting = self._postings[term]
                del posting[slot]
                if not posting:
                    del self._postings[term]
                self._arrays.pop(term, None)
        if not self._slot_of:
            self._total_length = 0.0  # no float drift once the index is empty

    def _posting_arrays(self, term: str) -> tuple[SlotArray, FloatArray]:
        """The posting of `term` as arrays, built on first use after the term last changed."""
        arrays = self._arrays.get(term)
        if arrays is None:
            posting = self._postings.get(term)
            if not posting:
                return _NO_SLOTS, _NO_WEIGHTS
            slots = np.fromiter(posting.keys(), np.int32, len(posting))
            weights = np.fromiter(posting.values(), np.float32, len(posting))
            arrays = self._arrays[term] = (slots, weights)
        return arrays
