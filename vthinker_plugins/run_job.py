"""``vthinker run``: a model through the code loop on a benchmark, scored, with a report.

    vthinker run --benchmark vtbench --model /models/V-Thinker-7B --eval

The run folder, resume plan and re-scoring are :mod:`vthinker_plugins.runs`; the parts of the run come
from :mod:`vthinker_plugins.factory`. Outputs, resume and re-scoring: docs/run.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from vthinker_plugins.factory import JudgeSettings, RunSettings, make_judge, unreachable_judge_note
from vthinker_plugins.loop import Trajectory
from vthinker_plugins.runs.files import slug
from vthinker_plugins.runs.results import (
    REPORT_FILE,
    SCORING_FAILED,
    SUMMARY_FILE,
    ResultsStore,
    build_summary,
    scoring_fingerprint,
    scoring_settings,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("what to run")
    g.add_argument("--benchmark", default=None,
                   help="vtbench, vtbench-perception, vtbench-instruction, vtbench-reasoning, mathvision, "
                        "mathvision-testmini, wemath, visulogic, or a local data path; default: the built-in "
                        "VTBench-format sample")
    g.add_argument("--model", default=None,
                   help="checkpoint path or hub id (transformers), openai:NAME, vllm:PATH, scripted:PATH (forced "
                        "tokens from --model-option script=FILE), or reference (an oracle replaying reference "
                        "code); default with the built-in sample: reference")
    g.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="backend option, repeatable: device=cuda, dtype=bfloat16, max_pixels=4194304, "
                        "max_batch_size=8, base_url=..., api_key=..., mode=turns, script=FILE.jsonl (scripted:)")
    g.add_argument("--data", default=None,
                   help="local copy of a named benchmark (file, folder, save_to_disk); default: "
                        "VTHINKER_<BENCHMARK>_DATA (e.g. VTHINKER_WEMATH_DATA), else the hub")
    g.add_argument("--split", default=None,
                   help="dataset split (default: train for VTBench and VisuLogic, test/testmini for MathVision, "
                        "testmini for We-Math)")
    g.add_argument("--limit", type=int, default=None,
                   help="first N samples of each task (vtbench: N per task, 3N in all), as lmms-eval's and "
                        "vthinker vlmeval's --limit")
    g.add_argument("--sample-rows", type=int, default=6, help="rows of the built-in sample (x3 tasks)")
    g = parser.add_argument_group("loop")
    g.add_argument("--max-rounds", type=int, default=None,
                   help="code executions per sample; overrides the per-task limits (VTBench perception and "
                        "instruction: 1, others: 5)")
    g.add_argument("--max-new-tokens", type=int, default=16384, help="per generation step")
    g.add_argument("--max-tool-images", type=int, default=10, help="sandbox images shown to the model per sample")
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--persistent-state", action="store_true", help="keep Python state across a sample's cells")
    g.add_argument("--concurrency", type=int, default=64, help="samples in flight at once")
    g.add_argument("--system-prompt-file", default=None,
                   help="system prompt text (e.g. the official V-Thinker data/prompt.txt)")
    g.add_argument("--user-prompt-file", default=None, help="user template with {images} and {question} fields")
    g = parser.add_argument_group("scoring and output")
    g.add_argument("--eval", action="store_true",
                   help="score every row and write metrics (on for the default); added on a re-run, the stored "
                        "rows are scored without generating them again")
    g.add_argument("--judge-url", default=None,
                   help="OpenAI-compatible base URL of an LLM judge (default: VTHINKER_JUDGE_URL)")
    g.add_argument("--judge-model", default=None,
                   help="judge model name, enables judge-based VTBench scoring (default: VTHINKER_JUDGE_MODEL)")
    g.add_argument("--judge-api-key", default=None, help="judge API key (default: OPENAI_API_KEY)")
    g.add_argument("--output", default=None, help="output folder (default: runs/<benchmark>__<model>)")
    g.add_argument("--clear-verdicts", action="store_true",
                   help="without --eval: clear the verdicts stored rows carry (kept by default)")
    g.add_argument("--overwrite", action="store_true", help="discard earlier results in the output folder")
    g.add_argument("--no-report", action="store_true", help="skip the HTML report")
    g.add_argument("--report-images", choices=("thumbnails", "links", "embed"), default="thumbnails",
                   help="images in report.html: embedded thumbnails linking to the files (default), links to "
                        "the files only (smallest), or embedded at full size (one self-contained file)")


def prepare(args: argparse.Namespace) -> tuple[str, str | None, str, Path, bool]:
    """(benchmark, data, model, output dir, eval) after applying the built-in defaults."""
    benchmark, data, model, scoring_on = args.benchmark, args.data, args.model, args.eval
    if benchmark is None:
        out = Path(args.output or Path("runs") / "default")
        from vthinker_plugins.data.vtbench_sample import DEFAULT_FILE_NAME, make_vtbench_sample

        data_file = out / "data" / DEFAULT_FILE_NAME
        if data is None:
            if not data_file.exists():
                make_vtbench_sample(data_file, n=args.sample_rows)
            data = str(data_file)
        benchmark, model, scoring_on = "vtbench", model or "reference", True
    elif model is None:
        raise SystemExit("--model is required with --benchmark: a checkpoint path, openai:NAME, vllm:PATH or reference")
    else:
        from vthinker_plugins.data.benchmarks import default_data

        data = data if data is not None else default_data(benchmark)
        name = model if model.startswith(("openai:", "vllm:")) else model.rstrip("/").split("/")[-1]
        out = Path(args.output or Path("runs") / f"{slug(Path(benchmark).stem, 'x')}__{slug(name, 'x')}")
    return benchmark, data, model, out, scoring_on


def _generate(store: ResultsStore, settings: RunSettings, backend: Any, todo: list[Any], n_total: int,
              done: dict[str, dict[str, Any]], judge: Any, scoring_on: bool, fingerprint: str) -> None:
    """Run ``todo`` through the loop; each trajectory is scored and appended as it finishes, on one worker
    thread, so scoring (maybe a judge call) never stalls generation."""
    from tqdm.auto import tqdm

    from vthinker_plugins.scoring import score_sample

    bar = tqdm(total=n_total, initial=n_total - len(todo), unit="sample", desc="vthinker run", dynamic_ncols=True)
    scored = [r["correct"] for r in done.values() if r.get("correct") is not None]
    n_errors = 0

    def finish(traj: Trajectory) -> None:
        nonlocal n_errors
        verdict = None
        if scoring_on and traj.error is None:
            try:
                verdict = score_sample(traj.sample, traj.text, traj.tool_images, judge=judge)
            except Exception as exc:  # noqa: BLE001 - recorded as an error row, retried on re-run
                traj.error = f"{SCORING_FAILED} {type(exc).__name__}: {exc}"
        row = store.trajectory_row(traj, verdict, fingerprint)
        store.append(row)
        n_errors += row["error"] is not None
        if row["correct"] is not None:
            scored.append(bool(row["correct"]))
        postfix: dict[str, Any] = {"errors": n_errors}
        if scored:
            postfix["acc"] = f"{100 * sum(scored) / len(scored):.1f}%"
        bar.set_postfix(postfix)
        bar.update(1)

    finisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vthinker-finish")
    pending: list[Future[None]] = []
    try:
        settings.loop(backend).run(todo, on_result=lambda traj: pending.append(finisher.submit(finish, traj)))
        for future in pending:
            future.result()  # re-raise a failure to write a row
    finally:
        finisher.shutdown(wait=True)
        bar.close()
        backend.close()


def main(args: argparse.Namespace) -> int:
    from vthinker_plugins.backends import ModelUnavailable, check_model, is_transport_option, parse_options
    from vthinker_plugins.data.benchmarks import load_benchmark
    from vthinker_plugins.data.sources import DataError, DataUnavailable

    started = time.perf_counter()
    benchmark, data, model, out, scoring_on = prepare(args)
    try:
        check_model(model)  # before anything is written: a wrong --model leaves no run.json behind
    except ModelUnavailable as exc:
        raise SystemExit(f"vthinker run: --model {model}: {exc}") from None
    store = ResultsStore(out)
    if args.overwrite and out.exists():
        store.clear()
    created_out = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        samples = load_benchmark(benchmark, data=data, split=args.split, limit=args.limit)
    except DataUnavailable as exc:
        raise SystemExit(f"vthinker run: {exc}") from None
    except DataError as exc:  # bad input is the user's to fix: a message, not a traceback
        raise SystemExit(f"vthinker run: bad data: {exc}") from None
    if args.max_rounds is not None:
        for s in samples:
            s.max_rounds = args.max_rounds
    settings = RunSettings(model, parse_options(args.model_option), max_new_tokens=args.max_new_tokens,
                           max_tool_images=args.max_tool_images, temperature=args.temperature, top_p=args.top_p,
                           persistent_state=args.persistent_state, concurrency=args.concurrency,
                           system_prompt_file=args.system_prompt_file, user_prompt_file=args.user_prompt_file)
    identity = {
        "benchmark": benchmark, "data": data, "split": args.split, "model": model,
        # Where the model is reached (device, endpoint, credentials) is not what generated the rows;
        # credentials must never land in the output folder.
        "model_options": sorted(o for o in args.model_option if not is_transport_option(o.partition("=")[0])),
        "max_rounds": args.max_rounds,
        "system_prompt_file": args.system_prompt_file, "user_prompt_file": args.user_prompt_file,
        "temperature": args.temperature, "top_p": args.top_p, "max_new_tokens": args.max_new_tokens,
        "max_tool_images": args.max_tool_images, "persistent_state": args.persistent_state,
    }
    try:
        judge_config = JudgeSettings.resolve(args.judge_model, args.judge_url, args.judge_api_key,
                                             cache_path=out / "judge_cache.jsonl") if scoring_on else None
        scoring = scoring_settings(judge_config, scoring_on)
    except ValueError as exc:
        raise SystemExit(f"vthinker run: {exc}") from None
    judge = make_judge(judge_config)
    if (note := unreachable_judge_note(judge, "rows")) is not None:
        print(f"vthinker run: WARNING: {note} until a re-run of this command judges them", file=sys.stderr, flush=True)
    plan, done, created_run_json = store.resume(samples, identity, scoring, judge, scoring_on,
                                                clear_verdicts=args.clear_verdicts)
    todo = [s for s in samples if str(s.id) not in done]
    print(f"vthinker run: {benchmark} ({len(samples)} samples, {len(samples) - len(todo)} already done) "
          f"with {model} -> {out}")
    if todo:
        try:
            backend = settings.backend()
        except BaseException as exc:
            if created_run_json and not store.results.exists():  # nothing was run: leave no run behind
                store.run_file.unlink(missing_ok=True)
                if created_out and not any(out.iterdir()):
                    out.rmdir()
            if isinstance(exc, (OSError, ValueError)):
                raise SystemExit(f"vthinker run: cannot load the model {model}: {exc}") from None
            raise
        _generate(store, settings, backend, todo, len(samples), done, judge, scoring_on, scoring_fingerprint(scoring))

    order = {s.id: i for i, s in enumerate(samples)}
    rows = sorted((r for r in store.rows() if r["id"] in order), key=lambda r: order[r["id"]])
    summary = build_summary(benchmark, data, model, rows, len(samples), scoring_on, time.perf_counter() - started,
                            this_run={"generated": len(todo), "rescored": len(plan.rescore),
                                      "rejudged": len(plan.rejudge), "regenerated": len(plan.regenerate)},
                            scoring=scoring)
    store.write_json(SUMMARY_FILE, summary)
    if not args.no_report:
        from vthinker_plugins.report import write_report

        write_report(rows, summary, out / REPORT_FILE, base_dir=out, images=args.report_images)
    print(f"results: {store.results}\nsummary: {out / SUMMARY_FILE}" + ("" if args.no_report else
                                                                      f"\nreport:  {out / REPORT_FILE}"))
    if summary.get("metrics"):
        print(json.dumps(summary["metrics"], indent=2, ensure_ascii=False)[:4000])
    for note in summary["notes"]:
        print(f"note: {note}")
    if summary["n_errors"]:
        print(f"{summary['n_errors']} sample(s) ended in an error; re-run the same command to retry them")
    return 0
