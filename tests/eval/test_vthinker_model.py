"""The ``vthinker`` lmms-eval model in process: any image task, trajectories on disk, resume; task data errors."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest
from PIL import Image


def _doc_to_messages(doc: dict) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image", "url": doc["image"]}, {"type": "text", "text": doc["q"]}]}]


def _requests(n: int) -> list:
    from lmms_eval.api.instance import Instance

    gen_kwargs = {"until": ["</answer>"], "max_new_tokens": 256, "max_rounds": 1}
    return [
        Instance(
            request_type="generate_until",
            arguments=("ctx", _doc_to_messages, dict(gen_kwargs), i, "other_task", "test"),
            idx=0,
            metadata={"task": "other_task", "doc_id": i, "repeats": 1},
        )
        for i in range(n)
    ]


def test_any_image_task_runs_the_loop_and_resumes(tmp_path: Path, tiny_model_dir: Path, draw_script: Path) -> None:
    from vthinker_plugins.lmms_eval import records
    from vthinker_plugins.lmms_eval.model import VThinker

    records.clear()
    docs = [{"q": f"Question {i}?", "image": Image.new("RGB", (200, 160), "white")} for i in range(2)]

    def model() -> VThinker:
        lm = VThinker(pretrained=f"scripted:{tiny_model_dir}", script=str(draw_script), device="cpu",
                      image_dir=str(tmp_path / "images"))
        lm.task_dict = {"other_task": {"test": docs}}  # a task that is not ours: generic samples
        return lm

    first = model().generate_until(_requests(2))
    assert len(first) == 2
    for i, result in enumerate(first):
        assert "<sandbox_output><image></sandbox_output>" in result.text and result.text.endswith("</answer>")
        record = records.lookup(f"other_task:test:{i}")
        assert record is not None and record["n_tool_calls"] == 1
        assert all(Path(p).exists() for p in record["generated_images"])

    # An interrupted run started again with the same image_dir does not generate again.
    records.clear()
    again = model()

    def no_generation(requests: list) -> list:
        raise AssertionError("resumed samples must not be generated again")

    again.backend.generate = no_generation  # type: ignore[method-assign]
    second = again.generate_until(_requests(2))
    assert [r.text for r in second] == [r.text for r in first]


def test_task_source_errors_name_the_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vthinker_plugins.lmms_eval import tasks

    stub = datasets.Dataset.from_list(
        [{"vthinker_source": "We-Math/VTBench", "split": "train", "env": "VTHINKER_VTBENCH_DATA"}]
    )
    missing = tmp_path / "missing.parquet"
    monkeypatch.setenv("VTHINKER_VTBENCH_DATA", str(missing))
    # A SystemExit with the message, which lmms-eval neither retries nor prints a traceback for.
    with pytest.raises(tasks.TaskDataError, match=r"missing\.parquet: no such file"):
        tasks.vtbench_reasoning_docs(stub)
    with pytest.raises(ValueError, match="exactly one row"):
        tasks.vtbench_reasoning_docs(datasets.concatenate_datasets([stub, stub]))
    with pytest.raises(ValueError, match="not a V-Thinker task doc"):
        tasks.doc_to_sample({"id": "1", "question": "q"})


def test_local_vtbench_docs_are_tagged(vtbench_parquet: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vthinker_plugins.lmms_eval import tasks

    stub = datasets.Dataset.from_list(
        [{"vthinker_source": "We-Math/VTBench", "split": "train", "env": "VTHINKER_VTBENCH_DATA"}]
    )
    monkeypatch.setenv("VTHINKER_VTBENCH_DATA", str(vtbench_parquet))
    docs = tasks.vtbench_perception_docs(stub)
    assert len(docs) == 3 and docs[0]["vthinker_key"] == f"vtbench_perception:{docs[0]['id']}"
    sample = tasks.doc_to_sample(docs[0])
    assert sample.task == "vtbench_perception" and sample.max_rounds == 1
    assert tasks.doc_to_text(docs[0]) == sample.question
    assert tasks.doc_to_visual(docs[0])[0].size == sample.images[0].size


def test_openai_compatible_backend_through_the_model(tmp_path: Path) -> None:
    """GPT-4o-style baselines: the same model class over an OpenAI-compatible API (a real local server)."""
    from fake_openai import FakeOpenAI, fixed

    from vthinker_plugins.lmms_eval import records
    from vthinker_plugins.lmms_eval.model import VThinker

    records.clear()
    docs = [{"q": "What is 3 + 4?", "image": Image.new("RGB", (64, 64), "white")}]
    with FakeOpenAI(fixed("<think>3 + 4 = 7</think><answer>7</answer>")) as served:
        calls = served.requests
        lm = VThinker(pretrained="api-model", backend="openai", base_url=served.url, api_key="x",
                      image_dir=str(tmp_path / "images"))
        lm.task_dict = {"other_task": {"test": docs}}
        [result] = lm.generate_until(_requests(1))
    assert result.text.endswith("<answer>7</answer>")
    assert len(calls) == 1 and calls[0]["model"] == "api-model"
    sent = [p for m in calls[0]["messages"] if isinstance(m["content"], list) for p in m["content"]]
    assert any(p.get("type") == "image_url" for p in sent)
    assert any("What is 3 + 4?" in p.get("text", "") for p in sent)


def test_resume_never_reuses_another_models_trajectories(tmp_path: Path) -> None:
    """A fixed image_dir resumes the same run only: records of another model (or other generation
    settings) there are not passed off as this model's responses."""
    from fake_openai import FakeOpenAI, fixed

    from vthinker_plugins.lmms_eval import records
    from vthinker_plugins.lmms_eval.model import VThinker

    docs = [{"q": "What is 3 + 4?", "image": Image.new("RGB", (64, 64), "white")}]

    def run(model: str, reply: str, **options: object) -> tuple[str, list[dict]]:
        records.clear()
        with FakeOpenAI(fixed(reply)) as served:
            calls = served.requests
            lm = VThinker(pretrained=model, backend="openai", base_url=served.url, api_key="x",
                          image_dir=str(tmp_path / "images"), **options)
            lm.task_dict = {"other_task": {"test": docs}}
            try:
                [result] = lm.generate_until(_requests(1))
            finally:
                lm.clean()
        return result.text, list(calls)

    first, calls = run("model-a", "<think>7</think><answer>7</answer>")
    assert first.endswith("<answer>7</answer>") and len(calls) == 1
    again, calls = run("model-a", "<think>7</think><answer>7</answer>")
    assert again == first and calls == []  # the same run resumes: nothing generated again
    with pytest.raises(ValueError, match="model-a"):
        run("model-b", "<think>8</think><answer>8</answer>")
    with pytest.raises(ValueError, match="max_new_tokens"):
        run("model-a", "<think>7</think><answer>7</answer>", max_new_tokens=64)


def test_max_batch_size_reaches_the_backend(tmp_path: Path, tiny_model_dir: Path, draw_script: Path) -> None:
    """``max_batch_size=`` in model_args (built the way lmms-eval builds models) sets the backend's batch size."""
    from vthinker_plugins.lmms_eval import records
    from vthinker_plugins.lmms_eval.model import VThinker

    records.clear()
    docs = [{"q": f"Question {i}?", "image": Image.new("RGB", (200, 160), "white")} for i in range(3)]
    args = f"pretrained=scripted:{tiny_model_dir},script={draw_script},device=cpu,image_dir={tmp_path / 'images'}"
    lm = VThinker.create_from_arg_string(f"{args},max_batch_size=1", {"batch_size": 1, "device": None})
    assert lm.backend.max_batch_size == 1 and lm.batch_size == 1
    lm.task_dict = {"other_task": {"test": docs}}
    sizes: list[int] = []
    generate = lm.backend.generate

    def spy(requests: list) -> list:
        sizes.append(len(requests))
        return generate(requests)

    lm.backend.generate = spy  # type: ignore[method-assign]
    results = lm.generate_until(_requests(3))
    assert len(results) == 3 and all(r.text.endswith("</answer>") for r in results)
    assert sizes and max(sizes) == 1, sizes

    # --batch_size N is capped at max_batch_size; alone it still sets the batch size.
    capped = VThinker.create_from_arg_string(f"{args}2,max_batch_size=2", {"batch_size": 8})
    assert capped.backend.max_batch_size == 2
    assert VThinker.create_from_arg_string(f"{args}3", {"batch_size": 3}).backend.max_batch_size == 3


def test_resume_from_a_record_of_the_old_layout(tmp_path: Path) -> None:
    """An image_dir written before the one trajectory layout (no ``layout``, rounds without their image lists,
    no input images) still resumes: the record is upgraded on reading, nothing is generated again."""
    import json

    from fake_openai import FakeOpenAI, fixed

    from vthinker_plugins.lmms_eval import records
    from vthinker_plugins.lmms_eval.model import VThinker

    docs = [{"q": "What is 3 + 4?", "image": Image.new("RGB", (64, 64), "white")}]

    def run() -> tuple[str, list[dict]]:
        records.clear()
        with FakeOpenAI(fixed("<think>7</think><answer>7</answer>")) as server:
            calls = server.requests
            lm = VThinker(pretrained="model-a", backend="openai", base_url=server.url, api_key="x",
                          image_dir=str(tmp_path / "images"))
            lm.task_dict = {"other_task": {"test": docs}}
            try:
                [result] = lm.generate_until(_requests(1))
            finally:
                lm.clean()
        return result.text, list(calls)

    first, calls = run()
    assert len(calls) == 1
    [path] = (tmp_path / "images").glob("*/trajectory.json")
    record = json.loads(path.read_text())
    assert record["layout"] == 2 and Path(record["input_images"][0]).is_file()
    for name in record.pop("input_images"):
        Path(name).unlink()
    del record["layout"]
    record["rounds"] = [{k: v for k, v in r.items() if k not in ("images", "error")} for r in record["rounds"]]
    path.write_text(json.dumps(record))
    again, calls = run()
    assert again == first and calls == []
    assert records.lookup("other_task:test:0")["generated_images"] == []
