"""The evolve step: the generator LLM proposes new child and sibling points from existing ones.

One round samples ``sources`` points (a domain uniformly, then a point of it below the deepest
layer; which ones depends only on the seed and the round's version), asks for each concurrently,
and adds every proposal that is not a duplicate (:meth:`KnowledgeGraph.add`), each appended to the
graph file as it is added. The round's record lists what was asked, what was added, which
proposals duplicated which point, and which replies were unreadable -- recorded, never a crash.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from vthinker_plugins.flywheel.knowledge import MAX_LAYER, KnowledgeGraph
from vthinker_plugins.flywheel.problem import json_object
from vthinker_plugins.flywheel.prompts import evolve_messages
from vthinker_plugins.llm_client import ChatClient, ReplyError


def parse_proposals(raw: str | None) -> dict[str, list[dict[str, str]]]:
    """``{"children": [{"name", "description"}], "siblings": [...]}`` (names may also be bare strings)."""
    obj = json_object(raw)
    out: dict[str, list[dict[str, str]]] = {}
    for key in ("children", "siblings"):
        items = obj.get(key) or []
        if not isinstance(items, list):
            raise ReplyError(f"field {key!r} must be a list")
        parsed = []
        for item in items:
            if isinstance(item, str):
                item = {"name": item}
            if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
                raise ReplyError(f"{key}: every entry needs a 'name' string, got {item!r}")
            parsed.append({"name": item["name"].strip()[:120], "description": str(item.get("description") or "")[:500]})
        out[key] = parsed
    if not out["children"] and not out["siblings"]:
        raise ReplyError("no children and no siblings proposed")
    return out


def pick_sources(graph: KnowledgeGraph, n: int, seed: int, version: int) -> list[str]:
    """``n`` distinct points to grow from, domain by domain, from layer 2 down."""
    rng = random.Random(f"{seed}:evolve:{version}")
    pools: dict[str, list[str]] = {}
    for p in sorted(graph.points.values(), key=lambda p: p.id):
        if 2 <= p.layer <= MAX_LAYER:
            pools.setdefault(p.domain, []).append(p.id)
    chosen: list[str] = []
    domains = sorted(pools)
    while len(chosen) < n and any(pools.values()):
        domain = rng.choice(domains)
        if pools[domain]:
            chosen.append(pools[domain].pop(rng.randrange(len(pools[domain]))))
    return chosen


async def evolve_round(graph: KnowledgeGraph, client: ChatClient, sources: int = 8, seed: int = 0,
                       children: int = 3, siblings: int = 2, progress: bool = True) -> dict[str, Any]:
    """Grow ``graph`` by one version; returns the round's record (also appended to the graph file)."""
    from tqdm.auto import tqdm

    version = graph.version + 1
    picked = pick_sources(graph, sources, seed, version)
    added: list[str] = []
    duplicates: list[dict[str, str]] = []
    failed: list[dict[str, str]] = []
    bar = tqdm(total=len(picked), desc=f"evolve v{version}", unit="point", disable=not progress)

    async def one(pid: str) -> None:
        n_children = children if graph.points[pid].layer < MAX_LAYER else 0
        reply = await client.ask(evolve_messages(graph, pid, n_children, siblings), parse_proposals, temperature=0.7)
        bar.update(1)
        if not reply.ok:
            failed.append({"from": pid, "error": reply.error or "", "raw": (reply.raw or "")[:500]})
            return
        for relation, key, limit in (("child", "children", n_children), ("sibling", "siblings", siblings)):
            for item in reply.value[key][:limit]:
                try:
                    point, dup = graph.add(item["name"], relation, pid, description=item["description"],
                                           provenance={"version": version, "model": client.model})
                except ValueError as exc:
                    failed.append({"from": pid, "error": str(exc), "raw": item["name"]})
                    continue
                if point is not None:
                    added.append(point.id)
                else:
                    duplicates.append({"name": item["name"], "relation": relation, "from": pid, "duplicate_of": dup})

    try:
        await asyncio.gather(*(one(pid) for pid in picked))
    finally:
        bar.close()
        await client.aclose()
    record = {"version": version, "model": client.model, "seed": seed, "sources": picked, "added": added,
              "duplicates": duplicates, "failed": failed}
    graph.record_round(record)
    return record
