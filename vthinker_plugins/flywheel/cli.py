"""``vthinker flywheel run|graph|evolve|merge|serve-scripted``: the data evolution flywheel.

Without ``--base-url`` the generator and the checker are the scripted server of
:mod:`vthinker_plugins.flywheel.scripted` (templated problems, NOT a model), started on 127.0.0.1 by
the command itself, which checks the pipeline offline. Real data needs a real model behind an
OpenAI-compatible endpoint (vLLM, ...).

Examples: docs/data.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vthinker_plugins.flywheel.knowledge import GraphError, KnowledgeGraph
from vthinker_plugins.flywheel.store import StoreError

DEFAULT_OUT = Path("runs") / "flywheel"
GRAPH_FILE = "knowledge.jsonl"


def _endpoint_args(parser: argparse.ArgumentParser, checker: bool) -> None:
    g = parser.add_argument_group("models (OpenAI-compatible endpoints; default: the local scripted server)")
    g.add_argument("--base-url", default=None,
                   help="generator endpoint, e.g. http://host:8000/v1 (a vLLM server); without it the command starts "
                        "the built-in scripted server (not a model) on 127.0.0.1")
    g.add_argument("--model", default=None, help="generator model name (required with --base-url)")
    g.add_argument("--api-key", default=None, help="API key (default: OPENAI_API_KEY; local servers ignore it)")
    if checker:
        g.add_argument("--checker-url", default=None, help="LMM checker endpoint (default: the generator's)")
        g.add_argument("--checker-model", default=None, help="LMM checker model (default: the generator model)")
        g.add_argument("--no-checker", action="store_true", help="deterministic checks only, no LMM checker")
    g.add_argument("--concurrency", type=int, default=16, help="requests (and tasks) in flight at once")
    g.add_argument("--timeout", type=float, default=300.0, help="seconds per LLM request")
    g.add_argument("--retries", type=int, default=3, help="further attempts after a failed request (with backoff)")
    g.add_argument("--backoff", type=float, default=1.0, help="first retry delay in seconds (doubled per retry)")
    g.add_argument("--scripted-latency", type=float, default=0.0,
                   help="seconds the scripted server waits per reply (simulates a model)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    run = sub.add_parser("run", help="synthesise, check and repair problems; write hub rows and a report",
                         description="Synthesise problems from knowledge points, check and repair them, expand "
                                     "their difficulty; write V-Interaction rows, perception rows and a report.")
    run.add_argument("--out", default=str(DEFAULT_OUT), help="run folder (shards go to OUT/shard-NNN-of-NNN)")
    run.add_argument("--graph", default=None, help=f"knowledge graph JSONL (default OUT/{GRAPH_FILE}; seeded if new)")
    run.add_argument("--num", type=int, default=12, help="base problems to write (variants come on top)")
    run.add_argument("--seed", type=int, default=0, help="task i depends only on the seed, i and the graph")
    run.add_argument("--sampling", choices=("random", "each"), default="random",
                     help="random: a domain, then its points; each: task i is about point i (in order)")
    run.add_argument("--points-per-problem", default="1-2", help="knowledge points per problem, N or MIN-MAX")
    run.add_argument("--expand", default="parallel,sequential",
                     help="difficulty expansion strategies for accepted problems (comma-separated, or none)")
    run.add_argument("--max-level", type=int, default=2, help="highest difficulty level (base problems are 1)")
    run.add_argument("--max-repairs", type=int, default=2, help="repair rounds before a problem is rejected")
    run.add_argument("--cell-timeout", type=float, default=10.0, help="seconds per sandbox cell")
    run.add_argument("--temperature", type=float, default=0.7, help="generator sampling temperature")
    run.add_argument("--max-tokens", type=int, default=4096, help="generator reply budget")
    run.add_argument("--no-repair-images", action="store_true",
                     help="do not show the repairer the images (a text-only generator)")
    run.add_argument("--num-shards", type=int, default=1, help="split the base tasks over this many shards")
    run.add_argument("--shard-index", type=int, default=0, help="which shard this process runs")
    run.add_argument("--overwrite", action="store_true", help="discard an earlier run in the folder")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--no-report", action="store_true", help="skip report.html")
    _endpoint_args(run, checker=True)

    graph = sub.add_parser("graph", help="show the knowledge graph (counts per layer and domain); seed it if new")
    graph.add_argument("--graph", default=str(DEFAULT_OUT / GRAPH_FILE), help="knowledge graph JSONL")
    graph.add_argument("--json", action="store_true", help="print the statistics as JSON")

    evolve = sub.add_parser("evolve", help="grow the knowledge graph with the generator LLM")
    evolve.add_argument("--graph", default=str(DEFAULT_OUT / GRAPH_FILE), help="knowledge graph JSONL (seeded if new)")
    evolve.add_argument("--rounds", type=int, default=1, help="evolve rounds (each one version)")
    evolve.add_argument("--sources", type=int, default=8, help="points to grow from per round")
    evolve.add_argument("--children", type=int, default=3, help="children to ask for per point")
    evolve.add_argument("--siblings", type=int, default=2, help="siblings to ask for per point")
    evolve.add_argument("--seed", type=int, default=0)
    evolve.add_argument("--no-progress", action="store_true")
    _endpoint_args(evolve, checker=False)

    merge = sub.add_parser("merge", help="join the shards of a sharded run")
    merge.add_argument("out", help="the run folder (its shard-NNN-of-NNN folders are merged into it)")
    merge.add_argument("shards", nargs="*", help="shard folders (default: OUT/shard-*)")
    merge.add_argument("--allow-incomplete", action="store_true", help="merge even if shards are missing or unfinished")
    merge.add_argument("--no-report", action="store_true")

    serve = sub.add_parser("serve-scripted", help="serve the scripted stand-in LLM (not a model) until Ctrl-C")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--latency", type=float, default=0.0, help="seconds per reply")


def _range(text: str) -> tuple[int, int]:
    try:
        lo, _, hi = text.partition("-")
        lo_i, hi_i = int(lo), int(hi or lo)
    except ValueError:
        raise SystemExit(f"--points-per-problem {text!r}: expected N or MIN-MAX") from None
    if not 1 <= lo_i <= hi_i:
        raise SystemExit(f"--points-per-problem {text!r}: need 1 <= MIN <= MAX")
    return lo_i, hi_i


@contextlib.contextmanager
def endpoints(args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    """(base URL, model) of the generator: the user's, or a scripted server started for the command."""
    if args.base_url:
        if not args.model:
            raise SystemExit("--base-url needs --model (the served model name)")
        check_endpoint(args.base_url, args.model, args.api_key)
        yield args.base_url, args.model
        return
    if args.model:
        raise SystemExit("--model needs --base-url (without it the built-in scripted server answers)")
    from vthinker_plugins.flywheel.scripted import SCRIPTED_MODEL, ScriptedServer

    with ScriptedServer(latency_s=args.scripted_latency) as server:
        print(f"flywheel: no --base-url: the built-in SCRIPTED server answers at {server.url} "
              "(templated problems, not a model)", file=sys.stderr)
        yield server.url, SCRIPTED_MODEL


def check_endpoint(url: str, model: str, api_key: str | None, timeout: float = 30.0) -> None:
    """Fail at once, with a message, when an endpoint cannot be reached (a mistyped URL would otherwise
    turn every task into an endpoint error); warn when it does not list ``model``."""
    from openai import OpenAI

    client = OpenAI(base_url=url, api_key=api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY", timeout=timeout,
                    max_retries=1)
    try:
        served = [m.id for m in client.models.list()]
    except Exception as exc:  # noqa: BLE001 - connection refused, DNS, TLS, 401 ...: all end the command
        status = getattr(exc, "status_code", None)
        if status == 404:  # an endpoint without a model list: the first request will tell
            return
        raise SystemExit(f"vthinker flywheel: cannot reach {url} ({type(exc).__name__}: {str(exc)[:200]})") from None
    finally:
        client.close()
    if served and model not in served:
        print(f"flywheel: warning: {url} serves {served[:5]}, not {model!r}", file=sys.stderr)


def _client(url: str, model: str, args: argparse.Namespace) -> Any:
    from vthinker_plugins.llm_client import ChatClient

    return ChatClient(url, model, args.api_key, concurrency=args.concurrency, timeout=args.timeout,
                      retries=args.retries, backoff=args.backoff)


def main(args: argparse.Namespace) -> int:
    try:
        return {"run": run_main, "graph": graph_main, "evolve": evolve_main, "merge": merge_main,
                "serve-scripted": serve_main}[args.action](args)
    except (GraphError, StoreError) as exc:
        raise SystemExit(f"vthinker flywheel {args.action}: {exc}") from None


def graph_main(args: argparse.Namespace) -> int:
    graph = KnowledgeGraph.open(args.graph)
    stats = graph.stats()
    if args.json:
        print(json.dumps(stats, indent=2, ensure_ascii=False))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"knowledge graph {stats['path']}: version {stats['version']}, {stats['points']} points, "
                  f"{stats['domains']} domains, {stats['rounds']} evolve round(s), digest {stats['digest']}")
    for title, counts in (("per layer", stats["by_layer"]), ("per domain", stats["by_domain"]),
                          ("added by version", stats["added_by_version"])):
        table = Table(title=title)
        table.add_column("")
        table.add_column("points", justify="right")
        for key, n in counts.items():
            table.add_row(str(key), str(n))
        console.print(table)
    return 0


def evolve_main(args: argparse.Namespace) -> int:
    from vthinker_plugins.flywheel.evolve import evolve_round

    graph = KnowledgeGraph.open(args.graph)
    before = len(graph.points)
    with endpoints(args) as (url, model):
        for _ in range(args.rounds):
            record = asyncio.run(evolve_round(graph, _client(url, model, args), sources=args.sources, seed=args.seed,
                                              children=args.children, siblings=args.siblings,
                                              progress=not args.no_progress))
            print(f"evolve v{record['version']}: {len(record['sources'])} point(s) asked, {len(record['added'])} "
                  f"added, {len(record['duplicates'])} duplicate(s) refused, {len(record['failed'])} failed")
    print(f"{args.graph}: {before} -> {len(graph.points)} points, version {graph.version} "
          f"(vthinker flywheel graph --graph {args.graph})")
    return 0


def run_main(args: argparse.Namespace) -> int:
    from sandbox import get_sandbox
    from vthinker_plugins.flywheel.checker_repairer import CheckerRepairer, SynthesisConfig
    from vthinker_plugins.flywheel.checks import ImageLimits
    from vthinker_plugins.flywheel.difficulty import check_strategies
    from vthinker_plugins.flywheel.engine import EngineConfig, FlywheelEngine
    from vthinker_plugins.flywheel.outputs import export, shard_folder_name, summarize, write_json
    from vthinker_plugins.flywheel.render import SandboxClock
    from vthinker_plugins.flywheel.store import RunStore
    from vthinker_plugins.flywheel.tasks import plan_task, shard_indices

    if args.num < 0 or args.max_level < 1 or args.max_repairs < 0 or args.concurrency < 1:
        raise SystemExit("--num >= 0, --max-level >= 1, --max-repairs >= 0 and --concurrency >= 1, please")
    try:
        indices = shard_indices(args.num, args.num_shards, args.shard_index)
        strategies = () if args.expand.strip().lower() in ("", "none") else check_strategies(
            [s.strip() for s in args.expand.split(",") if s.strip()])
    except ValueError as exc:
        raise SystemExit(f"vthinker flywheel run: {exc}") from None
    root = Path(args.out)
    folder = root / shard_folder_name(args.shard_index, args.num_shards) if args.num_shards > 1 else root
    graph_path = Path(args.graph) if args.graph else root / GRAPH_FILE
    graph = KnowledgeGraph.open(graph_path)
    points_range = _range(args.points_per_problem)
    limits = ImageLimits()
    config = SynthesisConfig(max_repairs=args.max_repairs, cell_timeout=args.cell_timeout, limits=limits,
                             repair_images=not args.no_repair_images, temperature=args.temperature,
                             max_tokens=args.max_tokens)
    with endpoints(args) as (url, model):
        checker_url = None if args.no_checker else (args.checker_url or url)
        checker_model = None if args.no_checker else (args.checker_model or model)
        if args.checker_url and not args.no_checker:
            check_endpoint(checker_url, checker_model, args.api_key)
        identity = {
            "graph": str(graph_path), "graph_digest": graph.digest(), "graph_version": graph.version,
            "seed": args.seed, "num": args.num, "sampling": args.sampling, "points_per_problem": list(points_range),
            "expand": list(strategies), "max_level": args.max_level, "max_repairs": args.max_repairs,
            "generator_model": model, "checker_model": checker_model, "temperature": args.temperature,
            "max_tokens": args.max_tokens, "cell_timeout": args.cell_timeout, "repair_images": config.repair_images,
            "limits": vars(limits), "num_shards": args.num_shards, "shard_index": args.shard_index,
            "generator_url": url if args.base_url else "scripted", "checker_url": checker_url if args.base_url
            else ("scripted" if checker_url else None),
        }
        store = RunStore(folder)
        done = store.open(identity, overwrite=args.overwrite)
        tasks = [plan_task(graph, args.seed, i, args.sampling, points_range) for i in indices]
        clock = SandboxClock()
        generator = _client(url, model, args)
        checker = _client(checker_url, checker_model, args) if checker_url else None
        repairer = CheckerRepairer(graph, generator, checker, get_sandbox(), config, clock)
        engine = FlywheelEngine(graph, repairer, store,
                                EngineConfig(seed=args.seed, expand=strategies, max_level=args.max_level,
                                             concurrency=args.concurrency, progress=not args.no_progress))
        n_done = sum(1 for t in tasks if (done.get(t.id) or {}).get("status") in ("accepted", "rejected"))
        print(f"vthinker flywheel run: {len(tasks)} base task(s) ({n_done} already done) over {len(graph.points)} "
              f"knowledge points (graph v{graph.version}) with {model} -> {folder}", file=sys.stderr)

        async def go() -> dict[str, Any]:
            try:
                return await engine.run(tasks, done)
            finally:
                await generator.aclose()
                if checker is not None:
                    await checker.aclose()

        this_run = asyncio.run(go())
    this_run["llm"] = {"generator": dict(generator.stats), "checker": dict(checker.stats) if checker else None}
    records = store.records()
    store.compact(records)
    counts = export(store, records)
    reached = sum(engine.counts[k] for k in ("accepted", "repaired", "rejected", "error"))
    summary = summarize(records, identity, planned=reached, outputs=counts, this_run=this_run)
    write_json(folder / "summary.json", summary)
    if not args.no_report:
        from vthinker_plugins.flywheel.report import write_report

        write_report(folder, records, summary)
    _print_summary(summary, folder, not args.no_report)
    return 0


def _print_summary(summary: dict[str, Any], folder: Path, report: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"flywheel {folder}")
    table.add_column("")
    table.add_column("tasks", justify="right")
    for key in ("tasks_done", "accepted", "repaired", "rejected", "errors", "perception_rows"):
        table.add_row(key, str(summary[key]))
    for reason, n in summary["rejected_by_reason"].items():
        table.add_row(f"  rejected: {reason}", str(n))
    for reason, n in summary["errors_by_reason"].items():
        table.add_row(f"  error: {reason}", str(n))
    console = Console(stderr=True)
    console.print(table)
    run = summary.get("this_run") or {}
    if run.get("wall_s"):
        console.print(f"this run: {run['generated']} task(s) in {run['wall_s']} s, sandbox busy "
                      f"{100 * (run.get('sandbox_share') or 0):.1f}% of the wall time", markup=False)
    outputs = summary["outputs"]
    console.print(f"interaction rows: {outputs['interaction_dir']} ({outputs['interaction_rows']})\n"
                  f"perception rows:  {outputs['perception_dir']} ({outputs['perception_rows']})\n"
                  f"records: {folder / 'records.jsonl'}\nsummary: {folder / 'summary.json'}"
                  + (f"\nreport:  {folder / 'report.html'}" if report else ""), markup=False)
    if summary["errors"]:
        console.print(f"{summary['errors']} task(s) ended in an endpoint error; re-run the same command to retry them",
                      markup=False)
    console.print(f"stage 2: vthinker convert interaction --source {outputs['interaction_dir']} --out data/llamafactory"
                  " --name flywheel_interaction", markup=False)


def merge_main(args: argparse.Namespace) -> int:
    from vthinker_plugins.flywheel.outputs import merge

    summary = merge(args.out, [Path(s) for s in args.shards] or None, allow_incomplete=args.allow_incomplete)
    if not args.no_report:
        from vthinker_plugins.flywheel.report import write_report
        from vthinker_plugins.flywheel.store import RunStore

        write_report(args.out, RunStore(args.out).records(), summary)
    _print_summary(summary, Path(args.out), not args.no_report)
    return 0


def serve_main(args: argparse.Namespace) -> int:
    import time

    from vthinker_plugins.flywheel.scripted import ScriptedServer

    with ScriptedServer(latency_s=args.latency, port=args.port) as server:
        print(f"scripted stand-in LLM (not a model) at {server.url}; Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0
