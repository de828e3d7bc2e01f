"""The knowledge system (seed, duplicates, evolve over real HTTP, versions, file errors), task planning,
reading the models' replies, and the run store's repair of a torn line."""

from __future__ import annotations

import asyncio
import json

import pytest

from vthinker_plugins.flywheel.checker import assess, parse_verdict
from vthinker_plugins.flywheel.evolve import evolve_round, pick_sources
from vthinker_plugins.flywheel.knowledge import MAX_LAYER, GraphError, KnowledgeGraph, normalize
from vthinker_plugins.flywheel.problem import Problem
from vthinker_plugins.flywheel.store import RunStore, StoreError
from vthinker_plugins.flywheel.tasks import plan_task, shard_indices
from vthinker_plugins.llm_client import ChatClient, ReplyError
from vthinker_plugins.protocol import check_format, extract_answer, parse_code_blocks

PYTH = "plane-geometry/triangles/pythagorean-theorem"


def test_seed_taxonomy_layers_stats_and_round_trip(tmp_path):
    graph = KnowledgeGraph.seeded(tmp_path / "kg.jsonl")
    stats = graph.stats()
    assert stats["domains"] >= 25 and stats["version"] == 0
    assert set(stats["by_layer"]) == {"1 domain", "2 topic", "3 concept"}
    assert sum(stats["by_domain"].values()) == stats["points"] == len(graph.points)
    for must in ("plane geometry", "solid geometry", "analytic geometry", "functions", "statistics charts",
                 "logic puzzles", "graph theory", "physics diagrams"):
        assert must in stats["by_domain"]
    assert graph.path_names(PYTH) == ["plane geometry", "triangles", "Pythagorean theorem"]
    again = KnowledgeGraph.load(tmp_path / "kg.jsonl")
    assert again.stats() == stats and again.digest() == graph.digest()


def test_duplicates_are_refused_and_additions_recorded_at_once(tmp_path):
    graph = KnowledgeGraph.seeded(tmp_path / "kg.jsonl")
    for name in ("Pythagorean Theorems", "the theorem of Pythagorean", "Pythagorean theorm", "  pythagorean  THEOREM!"):
        point, dup = graph.add(name, "sibling", PYTH)
        assert point is None and dup == PYTH, name
    point, dup = graph.add("Pythagorean theorem in three dimensions", "child", PYTH, description="space diagonals",
                           provenance={"version": 1, "model": "m"})
    assert dup is None and point.layer == 4 and point.parent == PYTH and point.domain == "plane geometry"
    assert point.provenance == {"source": "evolve", "relation": "child", "from": PYTH, "version": 1, "model": "m"}
    # Appended to the file as it was added: a fresh load sees it, and the graph's version is now 1.
    reloaded = KnowledgeGraph.load(tmp_path / "kg.jsonl")
    assert point.id in reloaded.points and reloaded.version == 1
    assert graph.add("plane geometry", "sibling", "plane-geometry")[1] == "plane-geometry"  # a domain twice
    new_domain, _ = graph.add("Crystallography diagrams", "sibling", "plane-geometry")
    assert new_domain.layer == 1 and new_domain.parent is None and new_domain.domain == "Crystallography diagrams"
    deep = point.id
    for layer in range(5, MAX_LAYER + 1):
        deep = graph.add(f"refinement {layer}", "child", deep)[0].id
    with pytest.raises(ValueError, match="layer 8"):
        graph.add("too deep", "child", deep)
    with pytest.raises(ValueError, match="unknown knowledge point"):
        graph.add("x", "child", "no/such/point")
    assert normalize("The Altitudes of a Triangle") == normalize("altitude triangle")


def test_evolve_over_http_grows_the_graph_across_runs(llm, tmp_path):
    path = tmp_path / "kg.jsonl"
    graph = KnowledgeGraph.seeded(path)
    n0 = len(graph.points)
    sources = pick_sources(graph, 6, seed=0, version=1)
    assert len(set(sources)) == 6 and sources == pick_sources(graph, 6, seed=0, version=1)
    llm.faults[sources[0]] = "malformed"
    client = ChatClient(llm.url, "gen", concurrency=4, timeout=5, retries=1, backoff=0.01)
    record = asyncio.run(evolve_round(graph, client, sources=6, seed=0, progress=False))
    assert record["version"] == 1 and record["sources"] == sources
    assert [f["from"] for f in record["failed"]] == [sources[0]] and "malformed" in record["failed"][0]["error"]
    # Of the 3 children taken from each of the 5 answers, the first restated its own point (refused).
    assert len(record["duplicates"]) == 5
    assert len(record["added"]) == 5 * (2 + 2)  # 2 new children + 2 siblings
    assert all(d["duplicate_of"] == d["from"] for d in record["duplicates"])
    for pid in record["added"]:
        point = graph.points[pid]
        assert point.provenance["version"] == 1 and point.provenance["model"] == "gen"
        assert point.provenance["from"] in sources
    # Another run of the command: the file is read back and grown further.
    graph = KnowledgeGraph.load(path)
    assert len(graph.points) == n0 + 20 and graph.rounds[0]["added"] == record["added"]
    llm.reset()
    second = asyncio.run(evolve_round(graph, ChatClient(llm.url, "gen", retries=0), sources=4, seed=0, progress=False))
    assert second["version"] == 2 and KnowledgeGraph.load(path).stats()["added_by_version"]["2"] == len(
        second["added"])


def test_graph_file_errors_name_the_line(tmp_path):
    path = tmp_path / "kg.jsonl"
    KnowledgeGraph.seeded(path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    with pytest.raises(GraphError, match=r"kg.jsonl:2: not JSON"):
        KnowledgeGraph.load(path)
    path.write_text(lines[0] + "\n" + json.dumps({"type": "point", "id": "a/b", "name": "b", "domain": "a", "layer": 2,
                                                  "parent": "a"}) + "\n")
    with pytest.raises(GraphError, match="unknown parent 'a'"):
        KnowledgeGraph.load(path)
    path.write_text("\n".join(lines) + '\n{"type": "point", "id": "x", "na')  # a kill mid-append: dropped
    assert len(KnowledgeGraph.load(path).points) == len(lines) - 1


def test_task_planning_is_deterministic_covering_and_sharded():
    graph = KnowledgeGraph.seeded()
    a = [plan_task(graph, 3, i) for i in range(40)]
    assert a == [plan_task(graph, 3, i) for i in range(40)] and a != [plan_task(graph, 4, i) for i in range(40)]
    for task in a:
        assert 1 <= len(task.points) <= 2 and len({graph.points[p].domain for p in task.points}) == 1
    assert len({graph.points[t.points[0]].domain for t in a}) >= 15  # domains drawn uniformly
    pools = graph.synthesis_points()
    everything = [p for d in sorted(pools) for p in pools[d]]
    each = [plan_task(graph, 0, i, "each", (1, 1)).points for i in range(len(everything))]
    assert [p[0] for p in each] == everything
    assert sorted(shard_indices(10, 3, 0) + shard_indices(10, 3, 1) + shard_indices(10, 3, 2)) == list(range(10))
    with pytest.raises(ValueError, match="shard-index"):
        shard_indices(10, 2, 2)


PROBLEM = {
    "question": "CA = 3 and CB = 4 with a right angle at C. What is AB?",
    "image_code": "img = Image.new('RGB', (224, 224), 'white')\nimg.save(processed_path)",
    "solution": [{"text": "AB is the hypotenuse."},
                 {"text": "Draw AB.", "code": "img = Image.open(image_path)\nimg.save(processed_path)"},
                 "So AB = 5."],
    "answer": 5,
    "points": {"A": [10, 20.5]},
}


@pytest.mark.parametrize("reply", [
    json.dumps(PROBLEM),
    "Here it is:\n```json\n" + json.dumps(PROBLEM, indent=2) + "\n```\nHope it helps.",
    "<think>{draft}</think>" + json.dumps(PROBLEM),
    "Sure. " + json.dumps(PROBLEM) + " Done.",
])
def test_problem_replies_are_read_and_render_in_the_protocol(reply):
    problem = Problem.from_reply(reply)
    assert problem.answer == "5" and problem.points == {"A": (10.0, 20.5)} and len(problem.code_steps) == 1
    cot = problem.cot_with_code()
    assert check_format(cot).ok and extract_answer(cot) == "5"
    assert parse_code_blocks(cot)[0].code == problem.tool_code.strip("\n")
    assert Problem.from_json(problem.to_json()) == problem


@pytest.mark.parametrize(("change", "message"), [
    ({"question": ""}, "'question' must be a non-empty string"),
    ({"answer": True}, "'answer' must be"),
    ({"solution": []}, "'solution' must be a non-empty list"),
    ({"solution": [{"text": "x", "code": 3}]}, "step 0: 'code' must be a string"),
    ({"points": {"A": [1]}}, r"points\['A'\] must be \[x, y\]"),
])
def test_problem_reply_errors_name_the_field(change, message):
    with pytest.raises(ReplyError, match=message):
        Problem.from_json({**PROBLEM, **change})
    with pytest.raises(ReplyError, match=r"invalid JSON|no JSON"):
        Problem.from_reply('{"question": "unterminated')


def test_checker_verdicts():
    ok = parse_verdict('```json\n{"answer": "5.0", "consistent": true, "issues": [], "fix": "none"}\n```')
    assert assess(ok, "5") == (True, "", "")
    bad = parse_verdict('{"consistent": "false", "issues": "the label B is missing", "fix": "image"}')
    assert assess(bad, "5") == (False, "checker_inconsistent", "fix the image: the label B is missing")
    contra = parse_verdict('{"answer": "7", "consistent": true}')
    assert assess(contra, "5")[1] == "answer_contradicts_checker"
    with pytest.raises(ReplyError, match="consistent"):
        parse_verdict('{"answer": "5"}')


def test_store_repairs_a_torn_line_and_refuses_garbage(tmp_path):
    store = RunStore(tmp_path / "run")
    assert store.open({"seed": 0}) == {}
    store.write({"id": "a", "status": "accepted", "attempts": [{}]}, [(b"png-a", None)])
    store.write({"id": "b", "status": "error", "attempts": []}, [])
    store.write({"id": "b", "status": "rejected", "attempts": []}, [])
    with store.records_path.open("a") as f:
        f.write('{"id": "c", "status": "acc')  # killed mid-append
    records = RunStore(tmp_path / "run").open({"seed": 0})
    assert {k: v["status"] for k, v in records.items()} == {"a": "accepted", "b": "rejected"}
    assert len(store.records_path.read_text().splitlines()) == 2  # compacted: one line per id, the torn one gone
    assert records["a"]["attempts"][0]["images"] == {"image": "images/" + store.image_folder("a").name
                                                     + "/round0_image.png"}
    with pytest.raises(StoreError, match="planned otherwise"):
        RunStore(tmp_path / "run").open({"seed": 1})
    store.records_path.write_text('garbage\n{"id": "a", "status": "accepted"}\n')
    with pytest.raises(StoreError, match=r"records.jsonl:1: not a JSON record"):
        RunStore(tmp_path / "run").open({"seed": 0})
