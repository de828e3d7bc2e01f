"""VLMEvalKit datasets: VTBench (three tasks and combined), MathVision, We-Math and VisuLogic in the V-Thinker protocol.

Data are TSVs under ``$LMUData``, built once from ``$VTHINKER_*_DATA`` or the hub when missing; scoring
uses :func:`vthinker_plugins.scoring.score_sample` on the ``extra_records`` the V-Thinker model writes.
Dataset names, data and scoring: docs/harnesses.md.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import threading
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from PIL import Image
from vlmeval.dataset.image_base import ImageBaseDataset
from vlmeval.smp import LMUDataRoot, dump, get_intermediate_file_path, load

from vthinker_plugins.data.sources import image_to_png
from vthinker_plugins.sample import Sample

VTBENCH_SUBSETS = {
    "VTBench": None,
    "VTBench_Perception": "perception",
    "VTBench_Instruction": "instruction",
    "VTBench_Reasoning": "reasoning",
}
MATHVISION_SPLITS = {"VThinker_MathVision": "mathvision", "VThinker_MathVision_MINI": "mathvision-testmini"}
VTBENCH_ENV, MATHVISION_ENV = "VTHINKER_VTBENCH_DATA", "VTHINKER_MATHVISION_DATA"
#: Multiple-choice benchmarks: dataset name -> (benchmark name, data variable).
CHOICE_DATASETS = {"VThinker_WeMath": ("wemath", "VTHINKER_WEMATH_DATA"),
                   "VThinker_VisuLogic": ("visulogic", "VTHINKER_VISULOGIC_DATA")}


# --------------------------------------------------------------------------- TSV files

def _b64_png(image: Image.Image) -> str:
    return base64.b64encode(image_to_png(image)).decode("ascii")


def _b64_compact(image: Image.Image) -> str:
    """Photos and scans that came as JPEG stay JPEG (a PNG of MathVision test is ~4x larger); the
    rest is PNG. Only for images no pixel metric looks at."""
    if getattr(image, "format", None) != "JPEG":
        return _b64_png(image)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=95)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _b64_image(value: str, where: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(base64.b64decode(value)))
        image.load()
    except Exception as exc:
        raise ValueError(f"{where}: not a base64 image ({exc})") from exc
    return image.convert("RGB")


def _progress(iterable: Any, desc: str) -> Any:  # tqdm over TSV building
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, unit="item")


def write_vtbench_tsv(source: str | None = None, path: str | Path | None = None) -> Path:
    """Write ``VTBench.tsv`` (all three tasks; ``category`` = perception|instruction|reasoning).

    ``source``: hub id, local file/folder or ``save_to_disk`` folder in the hub schema;
    default ``$VTHINKER_VTBENCH_DATA`` or ``We-Math/VTBench``. ``path``: default
    ``$LMUData/VTBench.tsv``.
    """
    from vthinker_plugins.data.benchmarks import iter_benchmark

    data = source or os.environ.get(VTBENCH_ENV) or None
    rows = []
    for i, sample in enumerate(_progress(iter_benchmark("vtbench", data), "VTBench -> TSV")):
        annotation = sample.meta.get("annotation")
        rows.append({
            "index": i,
            "id": sample.meta.get("row_id", sample.id),
            "sample_id": sample.id,
            "category": sample.task.removeprefix("vtbench_"),
            "image": _b64_png(sample.images[0]),
            "question": sample.question,
            "answer": sample.answer if sample.answer is not None else "",
            "annotation": _b64_png(annotation) if annotation is not None else "",
            "max_rounds": sample.max_rounds,
        })
    return _write(rows, path or Path(LMUDataRoot()) / "VTBench.tsv")


def write_mathvision_tsv(
    source: str | None = None, mini: bool = False, path: str | Path | None = None
) -> Path:
    """Write ``VThinker_MathVision[_MINI].tsv`` from the hub or a local MATH-V folder
    (default ``$VTHINKER_MATHVISION_DATA`` or ``MathLLMs/MathVision``)."""
    from vthinker_plugins.data.benchmarks import iter_benchmark

    name = "VThinker_MathVision_MINI" if mini else "VThinker_MathVision"
    data = source or os.environ.get(MATHVISION_ENV) or None
    rows = [_question_row(i, sample, level=sample.meta.get("level"), category=sample.meta.get("subject"))
            for i, sample in enumerate(_progress(iter_benchmark(MATHVISION_SPLITS[name], data), f"{name} -> TSV"))]
    return _write(rows, path or Path(LMUDataRoot()) / f"{name}.tsv")


def _question_row(index: int, sample: Any, **extra: Any) -> dict[str, Any]:
    """The TSV row of a single-image question with options (MathVision, We-Math, VisuLogic), 5 rounds."""
    return {
        "index": index,
        "id": sample.id,
        "sample_id": sample.id,
        "image": _b64_compact(sample.images[0]),
        "question": sample.question,
        "answer": sample.answer,
        "options": json.dumps(sample.options, ensure_ascii=False),
        **extra,
        "max_rounds": 5,
    }


def write_choice_tsv(dataset: str, source: str | None = None, path: str | Path | None = None) -> Path:
    """Write ``VThinker_WeMath.tsv`` or ``VThinker_VisuLogic.tsv`` from the hub or local data (default
    ``$VTHINKER_WEMATH_DATA`` / ``$VTHINKER_VISULOGIC_DATA``, else ``We-Math/We-Math`` /
    ``VisuLogic/VisuLogic``). Besides ``index, image, question, answer, options`` each row keeps what
    the official report needs: ``category`` (VisuLogic), ``group``/``step``/``knowledge_concept`` (We-Math)."""
    from vthinker_plugins.data.benchmarks import iter_benchmark

    benchmark, env = CHOICE_DATASETS[dataset]
    data = source or os.environ.get(env) or None
    rows = []
    for i, sample in enumerate(_progress(iter_benchmark(benchmark, data), f"{dataset} -> TSV")):
        meta = sample.meta
        rows.append(_question_row(i, sample, category=meta.get("category", meta.get("knowledge_concept")),
                                  group=meta.get("group"), step=meta.get("step"),
                                  knowledge_concept=meta.get("knowledge_concept")))
    return _write(rows, path or Path(LMUDataRoot()) / f"{dataset}.tsv")


def _write(rows: list[dict[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    if not rows:
        raise ValueError(f"no rows to write to {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pd.DataFrame(rows).to_csv(tmp, sep="\t", index=False)
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- prompts -> samples

_prompt_lock = threading.Lock()
_prompt_samples: dict[str, dict[str, Any]] = {}


def message_fingerprint(message: list[dict[str, Any]]) -> str:
    """Identify a prompt by its texts and image file names (stable across VLMEvalKit's preprocessing)."""
    parts = [
        f"{m.get('type')}:{Path(str(m.get('value'))).name if m.get('type') == 'image' else m.get('value')}"
        for m in message
    ]
    return hashlib.sha1("\x00".join(parts).encode("utf-8")).hexdigest()


def sample_info_for(message: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What a V-Thinker dataset recorded about the prompt ``message`` it built (or ``None``)."""
    with _prompt_lock:
        return _prompt_samples.get(message_fingerprint(message))


def _remember(message: list[dict[str, Any]], info: dict[str, Any]) -> None:
    with _prompt_lock:
        _prompt_samples[message_fingerprint(message)] = info


class _VThinkerDataset(ImageBaseDataset):
    """Shared plumbing: local TSV (built on first use), prompts the model can map back to samples."""

    TYPE = "VQA"
    MODALITY = "IMAGE"
    DEFAULT_JUDGE = "vthinker"  # our judge is configured by VTHINKER_JUDGE_*, not by VLMEvalKit's --judge
    #: TSV column -> ``Sample.meta`` key, for what the scorer and its report need.
    META_COLUMNS: ClassVar[dict[str, str]] = {"level": "level", "category": "subject"}

    def load_data(self, dataset: str) -> pd.DataFrame:
        path = Path(LMUDataRoot()) / f"{self._tsv_name(dataset)}.tsv"
        if not path.exists():
            self._build_tsv(dataset, path)
        data = load(str(path))
        required = {"index", "image", "question", "answer", "category"}
        missing = sorted(required - set(data.columns))
        if missing:
            raise ValueError(f"{path}: missing columns {missing} (columns: {list(data.columns)})")
        return self._select(dataset, data)

    @classmethod
    def supported_datasets(cls) -> list[str]:
        return list(cls.DATASET_URL)

    def _tsv_name(self, dataset: str) -> str:
        return dataset

    def _build_tsv(self, dataset: str, path: Path) -> None:
        raise NotImplementedError

    def first_per_task(self, limit: int) -> pd.DataFrame:
        """The first ``limit`` rows of each task, in order: what ``--limit`` means for a V-Thinker dataset
        (the combined ``VTBench`` gets ``limit`` rows of each of its three tasks), as in lmms-eval."""
        tasks = pd.Series([self._task_of(line) for _, line in self.data.iterrows()], index=self.data.index)
        return self.data[tasks.groupby(tasks, sort=False).cumcount() < limit]

    def _select(self, dataset: str, data: pd.DataFrame) -> pd.DataFrame:
        return data

    def build_prompt(self, line: Any) -> list[dict[str, Any]]:
        if isinstance(line, int):
            line = self.data.iloc[line]
        paths = self.dump_image(line)
        message = [{"type": "image", "value": p} for p in (paths if isinstance(paths, list) else [paths])]
        message.append({"type": "text", "value": str(line["question"])})
        _remember(message, self._info(line))
        return message

    def _info(self, line: Any) -> dict[str, Any]:
        return {
            "dataset": self.dataset_name,
            "index": str(line["index"]),
            "id": str(line.get("sample_id", line["index"])),
            "task": self._task_of(line),
            "answer": None if pd.isna(line.get("answer")) else str(line.get("answer")),
            "options": self._options(line),
            "max_rounds": int(line["max_rounds"]) if "max_rounds" in line and not pd.isna(line["max_rounds"]) else None,
        }

    def _task_of(self, line: Any) -> str:
        raise NotImplementedError

    @staticmethod
    def _options(line: Any) -> list[str]:
        raw = line.get("options") if hasattr(line, "get") else None
        if raw is None or (isinstance(raw, float) and pd.isna(raw)) or raw == "":
            return []
        return [str(o) for o in (json.loads(raw) if isinstance(raw, str) else raw)]

    def row_sample(self, line: Any) -> Sample:
        """The full :class:`Sample` of a TSV row (images, ground-truth annotation, metadata)."""
        where = f"{self.dataset_name} index {line['index']}"
        info = self._info(line)
        meta: dict[str, Any] = {}
        if isinstance(line.get("annotation"), str) and line["annotation"]:
            meta["annotation"] = _b64_image(line["annotation"], f"{where} field 'annotation'")
        for column, key in self.META_COLUMNS.items():
            if column in line and not pd.isna(line[column]):
                meta[key] = line[column]
        return Sample(
            id=info["id"],
            question=str(line["question"]),
            images=[_b64_image(str(line["image"]), f"{where} field 'image'")],
            answer=info["answer"],
            options=info["options"],
            task=info["task"],
            max_rounds=info["max_rounds"],
            meta=meta,
        )

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, eval_file: str, **judge_kwargs: Any) -> Any:
        """Score every prediction with :func:`vthinker_plugins.scoring.score_samples` (judge calls run
        concurrently). Writes ``<eval_file>_vthinker_verdicts.xlsx`` (one row per item, with the
        generated image paths) and ``<eval_file>_vthinker_score.json``; returns the summary."""
        from vthinker_plugins.runs.trajectory import load_images, load_record
        from vthinker_plugins.scoring import score_samples

        predictions = load(eval_file)
        # VLMEvalKit drops the image column from self.data after inference: read the TSV again.
        data = self.load_data(self.dataset_name)
        rows = {str(i): row for i, row in data.set_index(data["index"].astype(str)).iterrows()}
        items, extras = [], []
        for _, pred in predictions.iterrows():
            index = str(pred["index"])
            if index not in rows:
                raise ValueError(f"{eval_file}: prediction for index {index} is not in dataset {self.dataset_name}")
            line = rows[index].copy()
            line["index"] = index
            sample = self.row_sample(line)
            extra = _extra_records(pred.get("extra_records"))
            record = load_record(Path(extra["record"]).parent) if extra.get("record") else None
            text = (record or {}).get("text") or str(pred.get("prediction", ""))
            image_paths = list((record or extra).get("generated_images") or [])
            items.append((sample, text, load_images(image_paths)))
            extras.append({"index": index, "category": line.get("category"), "generated_images": image_paths})
        verdicts = score_samples(items, judge=judge_for(judge_kwargs))
        for verdict, extra in zip(verdicts, extras, strict=True):
            verdict.update(extra)
        table = pd.DataFrame([
            {k: json.dumps(v, default=str) if isinstance(v, (dict, list)) else v for k, v in verdict.items()}
            for verdict in verdicts
        ])
        dump(table, get_intermediate_file_path(eval_file, "_vthinker_verdicts", "xlsx"))
        summary = self.summarize(verdicts)
        dump(summary, get_intermediate_file_path(eval_file, "_vthinker_score", "json"))
        return summary

    def summarize(self, verdicts: list[dict[str, Any]]) -> dict[str, Any]:
        """Per-task metrics of :func:`vthinker_plugins.scoring.summarize`, accuracy in percent as ``Overall``
        for a single-task dataset; one entry per task for the combined ``VTBench``."""
        from vthinker_plugins.scoring import null_accuracy_reason, summarize

        per_task = summarize(verdicts)
        for task, metrics in per_task.items():  # say why an accuracy is null (e.g. the judge was down)
            reason = null_accuracy_reason(metrics, [v for v in verdicts if v.get("task") == task])
            if reason is not None:
                metrics["note"] = reason
        if len(per_task) == 1:
            metrics = next(iter(per_task.values()))
            return {"Overall": metrics.get("accuracy_pct"), **metrics}
        return {task.removeprefix("vtbench_"): metrics for task, metrics in per_task.items()}


def judge_for(judge_kwargs: dict[str, Any]) -> Any:
    """The LMM judge: VLMEvalKit's ``--judge MODEL --judge-base-url URL [--judge-key KEY]`` when a base
    URL was given (prompt files, cache and limits still from ``VTHINKER_JUDGE_*``), else the one
    configured by ``VTHINKER_JUDGE_*`` (or none: pixel metric and rules)."""
    from vthinker_plugins.factory import JudgeSettings, make_judge

    api_base = judge_kwargs.get("api_base")
    if not api_base:
        return make_judge(JudgeSettings.from_env())
    overrides: dict[str, Any] = {}
    if judge_kwargs.get("timeout"):
        overrides["timeout"] = float(judge_kwargs["timeout"])
    if judge_kwargs.get("nproc"):
        overrides["concurrency"] = int(judge_kwargs["nproc"])
    if judge_kwargs.get("retry") is not None:
        overrides["retries"] = int(judge_kwargs["retry"])
    return make_judge(JudgeSettings(str(judge_kwargs["model"]), str(api_base).removesuffix("/chat/completions"),
                                    api_key=judge_kwargs.get("key"), overrides=overrides))


def _extra_records(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return {}
    return {}


class VTBenchDataset(_VThinkerDataset):
    """VTBench: ``VTBench`` (all tasks) or one of its three tasks."""

    DATASET_URL = dict.fromkeys(VTBENCH_SUBSETS, "")
    DATASET_MD5 = dict.fromkeys(VTBENCH_SUBSETS)

    def _tsv_name(self, dataset: str) -> str:
        return "VTBench"

    def _build_tsv(self, dataset: str, path: Path) -> None:
        write_vtbench_tsv(path=path)

    def _select(self, dataset: str, data: pd.DataFrame) -> pd.DataFrame:
        category = VTBENCH_SUBSETS[dataset]
        if category is None:
            return data
        selected = data[data["category"] == category].reset_index(drop=True)
        if selected.empty:
            raise ValueError(f"{dataset}: no rows with category {category!r} in VTBench.tsv")
        return selected

    def _task_of(self, line: Any) -> str:
        return f"vtbench_{line['category']}"


class VThinkerMathVision(_VThinkerDataset):
    """MathVision (test / testmini) in the V-Thinker protocol, scored by the project's own rules;
    ``evaluate`` also writes the official layout (``-all``, ``-level1``, ...)."""

    DATASET_URL = dict.fromkeys(MATHVISION_SPLITS, "")
    DATASET_MD5 = dict.fromkeys(MATHVISION_SPLITS)

    def _build_tsv(self, dataset: str, path: Path) -> None:
        write_mathvision_tsv(mini=dataset.endswith("_MINI"), path=path)

    def _task_of(self, line: Any) -> str:
        return "mathvision"

    def summarize(self, verdicts: list[dict[str, Any]]) -> dict[str, Any]:
        """The official MATH-V layout (``-all``, ``-level1``, ``{subject}_level1``, ...), led by
        ``Overall`` (accuracy in percent) for VLMEvalKit's run report."""
        from vthinker_plugins.scoring import mathvision_report, summarize

        overall = summarize(verdicts).get("mathvision", {}).get("accuracy_pct")
        return {"Overall": overall, **mathvision_report(verdicts)}


class _VThinkerChoice(_VThinkerDataset):
    """A multiple-choice benchmark scored by the project's own rules (:mod:`vthinker_plugins.scoring`)."""

    def _build_tsv(self, dataset: str, path: Path) -> None:
        write_choice_tsv(dataset, path=path)


class VThinkerWeMath(_VThinkerChoice):
    """We-Math testmini in the V-Thinker protocol; ``evaluate`` reports the official four-dimensional
    layout (``Score (Strict)``, ``InsufficientKnowledge (Strict)``, ..., ``One-step(S1)``, ...)."""

    DATASET_URL = dict.fromkeys(("VThinker_WeMath",), "")
    DATASET_MD5 = dict.fromkeys(("VThinker_WeMath",))
    META_COLUMNS: ClassVar[dict[str, str]] = {"group": "group", "step": "step",
                                              "knowledge_concept": "knowledge_concept"}

    def _task_of(self, line: Any) -> str:
        return "wemath"

    def summarize(self, verdicts: list[dict[str, Any]]) -> dict[str, Any]:
        from vthinker_plugins.scoring import summarize, wemath_report

        overall = summarize(verdicts).get("wemath", {}).get("accuracy_pct")
        return {"Overall": overall, **wemath_report(verdicts)}


class VThinkerVisuLogic(_VThinkerChoice):
    """VisuLogic in the V-Thinker protocol; ``evaluate`` reports accuracy overall and per category."""

    DATASET_URL = dict.fromkeys(("VThinker_VisuLogic",), "")
    DATASET_MD5 = dict.fromkeys(("VThinker_VisuLogic",))
    META_COLUMNS: ClassVar[dict[str, str]] = {"category": "category"}

    def _task_of(self, line: Any) -> str:
        return "visulogic"

    def summarize(self, verdicts: list[dict[str, Any]]) -> dict[str, Any]:
        """``Overall`` (percent) and ``<category>`` accuracies (percent), then the counts per category."""
        from vthinker_plugins.scoring import visulogic_report

        report = visulogic_report(verdicts)
        return {**{name: round(entry["acc"], 2) for name, entry in report.items()}, "counts": report}


DATASET_CLASSES = (VTBenchDataset, VThinkerMathVision, VThinkerWeMath, VThinkerVisuLogic)
#: Class names under which the datasets are exposed on ``vlmeval.dataset`` (for ``--config``).
EXPORTED_NAMES = {"VTBench": VTBenchDataset, "VThinkerMathVision": VThinkerMathVision,
                  "VThinkerWeMath": VThinkerWeMath, "VThinkerVisuLogic": VThinkerVisuLogic}


def register_datasets() -> list[str]:
    """Add the datasets to VLMEvalKit's registry (idempotent); returns their names."""
    from vthinker_plugins.vlmeval.compat import add_datasets

    add_datasets(DATASET_CLASSES, exported=EXPORTED_NAMES)
    return [name for cls in DATASET_CLASSES for name in cls.supported_datasets()]
