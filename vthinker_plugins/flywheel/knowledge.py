"""The knowledge system: a versioned graph of knowledge points, stored as JSONL.

A point has a name, a domain, a layer (up to :data:`MAX_LAYER`), a parent and its provenance. The
file is append-only (point lines and evolve-round lines) and versioned per round, so the graph at an
earlier version can be told apart; near-duplicate names within a domain are refused when added.

Design notes (file format, versions, the duplicate rule): docs/data.md.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vthinker_plugins.flywheel.taxonomy import SEED_TAXONOMY
from vthinker_plugins.runs.files import write_jsonl

MAX_LAYER = 7
LAYER_NAMES = ("domain", "topic", "concept", "subconcept", "skill", "case", "variant")
#: Names at least this similar (SequenceMatcher ratio of the normalised forms) are duplicates.
SIMILARITY = 0.9
#: Points from this layer down are what problems are written about (concepts and finer).
SYNTHESIS_MIN_LAYER = 3
FORMAT = "vthinker-knowledge-graph/1"


class GraphError(ValueError):
    """A knowledge-graph file that cannot be read; the message names the file and line."""


@dataclass
class KnowledgePoint:
    id: str
    name: str
    domain: str
    layer: int
    parent: str | None = None
    description: str = ""
    #: source (seed | evolve), version, relation (child | sibling), from (point id), model
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> int:
        return int(self.provenance.get("version", 0))


_STOP = {"a", "an", "the", "of", "and", "in", "on", "for", "to", "with", "by"}


def normalize(name: str) -> str:
    """The comparable form of a point's name: lower case, words only, no articles, no plural ``s``."""
    words = re.sub(r"[^0-9a-z]+", " ", name.casefold()).split()
    out = []
    for w in words:
        if w in _STOP:
            continue
        if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
            w = w[:-1]
        out.append(w)
    return " ".join(out)


def slug(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "-", name.casefold()).strip("-")[:60] or "point"


class KnowledgeGraph:
    """Knowledge points by id, with the file they live in (``path``; ``None``: in memory only)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.points: dict[str, KnowledgePoint] = {}
        self.rounds: list[dict[str, Any]] = []
        self._by_domain: dict[str, list[tuple[str, str]]] = {}  # domain -> [(normalised name, id)]
        self._exact: dict[tuple[str, str], str] = {}  # (domain, normalised name) -> id
        self._words: dict[tuple[str, frozenset[str]], str] = {}  # (domain, word set) -> id
        self._pools: dict[str, list[str]] | None = None  # synthesis_points(), until the next addition

    # ------------------------------------------------------------------ building

    @classmethod
    def seeded(cls, path: str | Path | None = None) -> KnowledgeGraph:
        """The starter taxonomy (version 0); written to ``path`` when given."""
        graph = cls(path)
        prov = {"source": "seed", "version": 0}
        for domain, topics in SEED_TAXONOMY.items():
            d = graph._insert(domain, None, domain, 1, "", dict(prov))
            for topic, concepts in topics.items():
                t = graph._insert(topic, d.id, domain, 2, "", dict(prov))
                for concept in concepts:
                    graph._insert(concept, t.id, domain, 3, "", dict(prov))
        if graph.path is not None:
            graph.save()
        return graph

    @classmethod
    def load(cls, path: str | Path) -> KnowledgeGraph:
        path = Path(path)
        graph = cls(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise GraphError(f"{path}: cannot read the knowledge graph ({exc})") from exc
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                if lineno == len(lines):  # an append cut short by a kill
                    continue
                raise GraphError(f"{path}:{lineno}: not JSON ({exc})") from None
            kind = obj.get("type") if isinstance(obj, dict) else None
            if kind == "point":
                try:
                    point = KnowledgePoint(id=str(obj["id"]), name=str(obj["name"]), domain=str(obj["domain"]),
                                           layer=int(obj["layer"]), parent=obj.get("parent"),
                                           description=str(obj.get("description") or ""),
                                           provenance=dict(obj.get("provenance") or {}))
                except (KeyError, TypeError, ValueError) as exc:
                    raise GraphError(f"{path}:{lineno}: point without a valid {exc}") from None
                if point.parent is not None and point.parent not in graph.points:
                    raise GraphError(f"{path}:{lineno}: point {point.id!r} names unknown parent {point.parent!r}")
                if point.id in graph.points:
                    raise GraphError(f"{path}:{lineno}: point id {point.id!r} occurs twice")
                graph._index(point)
            elif kind == "round":
                graph.rounds.append(obj)
            elif kind == "header":
                if obj.get("format") != FORMAT:
                    raise GraphError(f"{path}:{lineno}: format {obj.get('format')!r}, expected {FORMAT!r}")
            else:
                raise GraphError(f"{path}:{lineno}: unknown line type {kind!r} (expected point, round or header)")
        if not graph.points:
            raise GraphError(f"{path}: holds no knowledge points")
        return graph

    @classmethod
    def open(cls, path: str | Path) -> KnowledgeGraph:
        """The graph in ``path``, seeded with the starter taxonomy if the file does not exist yet."""
        return cls.load(path) if Path(path).exists() else cls.seeded(path)

    def save(self, path: str | Path | None = None) -> Path:
        """Write the whole graph (atomically) to ``path`` or its own file."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("no path to save the knowledge graph to")
        target.parent.mkdir(parents=True, exist_ok=True)
        lines = [{"type": "header", "format": FORMAT}]
        lines += [{"type": "point", **asdict(p)} for p in self.points.values()]
        lines += self.rounds
        write_jsonl(target, lines)
        self.path = target
        return target

    def _append(self, lines: Iterable[dict[str, Any]]) -> None:
        if self.path is None:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
            f.flush()
            os.fsync(f.fileno())

    def _index(self, point: KnowledgePoint) -> None:
        self.points[point.id] = point
        self._pools = None
        norm = normalize(point.name)
        self._by_domain.setdefault(point.domain, []).append((norm, point.id))
        self._exact.setdefault((point.domain, norm), point.id)
        self._words.setdefault((point.domain, frozenset(norm.split())), point.id)

    def _insert(self, name: str, parent: str | None, domain: str, layer: int, description: str,
                provenance: dict[str, Any]) -> KnowledgePoint:
        base = slug(name) if parent is None else f"{parent}/{slug(name)}"
        pid, k = base, 2
        while pid in self.points:
            pid, k = f"{base}-{k}", k + 1
        point = KnowledgePoint(pid, name.strip(), domain, layer, parent, description.strip(), provenance)
        self._index(point)
        return point

    # ------------------------------------------------------------------ growing

    def duplicate_of(self, name: str, domain: str) -> str | None:
        """The id of an existing point of ``domain`` that ``name`` duplicates, or ``None``."""
        norm = normalize(name)
        if not norm:
            return None
        hit = self._exact.get((domain, norm)) or self._words.get((domain, frozenset(norm.split())))
        if hit is not None:
            return hit
        matcher = difflib.SequenceMatcher(autojunk=False)
        matcher.set_seq2(norm)
        numbers = re.findall(r"\d+", norm)
        for other, pid in self._by_domain.get(domain, ()):
            if re.findall(r"\d+", other) != numbers:  # "a 5-gon" and "a 6-gon" are different points
                continue
            matcher.set_seq1(other)
            if matcher.real_quick_ratio() >= SIMILARITY and matcher.quick_ratio() >= SIMILARITY \
                    and matcher.ratio() >= SIMILARITY:
                return pid
        return None

    def add(self, name: str, relation: str, source: str, *, description: str = "",
            provenance: dict[str, Any] | None = None) -> tuple[KnowledgePoint | None, str | None]:
        """Add ``name`` as a ``child`` or ``sibling`` of point ``source``; appended to the file at once.

        Returns ``(point, None)``, or ``(None, id of the point it duplicates)``; raises ``ValueError``
        for an unknown source, an unknown relation, an empty name or a child below :data:`MAX_LAYER`.
        """
        if source not in self.points:
            raise ValueError(f"unknown knowledge point {source!r}")
        src = self.points[source]
        if relation == "child":
            parent, layer = src.id, src.layer + 1
        elif relation == "sibling":
            parent, layer = src.parent, src.layer
        else:
            raise ValueError(f"relation must be 'child' or 'sibling', got {relation!r}")
        if layer > MAX_LAYER:
            raise ValueError(f"{source}: a child would be at layer {layer} > {MAX_LAYER}")
        name = " ".join(str(name).split())
        if not normalize(name):
            raise ValueError(f"empty knowledge point name {name!r}")
        domain = src.domain if layer > 1 else name
        if layer == 1:  # a new domain: compared with the other domains
            norm = normalize(name)
            dup = next((p.id for p in self.points.values() if p.layer == 1 and (
                normalize(p.name) == norm
                or difflib.SequenceMatcher(None, normalize(p.name), norm).ratio() >= SIMILARITY)), None)
        else:
            dup = self.duplicate_of(name, domain)
        if dup is not None:
            return None, dup
        prov = {"source": "evolve", "relation": relation, "from": source, **(provenance or {})}
        point = self._insert(name, parent, domain, layer, description, prov)
        self._append([{"type": "point", **asdict(point)}])
        return point, None

    def record_round(self, record: dict[str, Any]) -> None:
        """Append an evolve round's record (its points were appended as they were added)."""
        record = {"type": "round", "time": round(time.time(), 3), **record}
        self.rounds.append(record)
        self._append([record])

    # ------------------------------------------------------------------ reading

    @property
    def version(self) -> int:
        """The latest version: the seed is 0, each evolve round adds one."""
        versions = [p.version for p in self.points.values()] + [int(r.get("version", 0)) for r in self.rounds]
        return max(versions, default=0)

    def digest(self) -> str:
        """A short hash of the points (ids and names): what a synthesis run was planned on."""
        h = hashlib.sha256()
        for pid in sorted(self.points):
            h.update(f"{pid}\x00{self.points[pid].name}\x00".encode())
        return h.hexdigest()[:16]

    def path_names(self, pid: str) -> list[str]:
        """Names from the domain down to the point."""
        names = []
        point: KnowledgePoint | None = self.points[pid]
        while point is not None:
            names.append(point.name)
            point = self.points.get(point.parent) if point.parent else None
        return names[::-1]

    def describe(self, pid: str) -> dict[str, Any]:
        """What a prompt says about a point: id, path, layer and description."""
        point = self.points[pid]
        out: dict[str, Any] = {"id": pid, "path": " > ".join(self.path_names(pid)), "layer": point.layer}
        if point.description:
            out["description"] = point.description
        return out

    def children(self, pid: str) -> list[KnowledgePoint]:
        return [p for p in self.points.values() if p.parent == pid]

    def siblings(self, pid: str) -> list[KnowledgePoint]:
        parent = self.points[pid].parent
        return [p for p in self.points.values() if p.parent == parent and p.id != pid]

    def synthesis_points(self) -> dict[str, list[str]]:
        """Ids of the points problems are written about (layer >= 3), by domain, sorted (do not modify)."""
        if self._pools is None:
            out: dict[str, list[str]] = {}
            for p in sorted(self.points.values(), key=lambda p: p.id):
                if p.layer >= SYNTHESIS_MIN_LAYER:
                    out.setdefault(p.domain, []).append(p.id)
            self._pools = out
        return self._pools

    def stats(self) -> dict[str, Any]:
        """Counts per layer and per domain, the version and the evolve rounds."""
        by_layer = Counter(p.layer for p in self.points.values())
        by_domain = Counter(p.domain for p in self.points.values())
        added = Counter(p.version for p in self.points.values())
        return {
            "path": str(self.path) if self.path else None,
            "version": self.version,
            "points": len(self.points),
            "domains": len(by_domain),
            "by_layer": {f"{k} {LAYER_NAMES[k - 1]}": by_layer[k] for k in sorted(by_layer)},
            "by_domain": dict(sorted(by_domain.items())),
            "added_by_version": {str(k): added[k] for k in sorted(added)},
            "rounds": len(self.rounds),
            "digest": self.digest(),
        }
