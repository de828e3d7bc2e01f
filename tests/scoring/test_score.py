"""score_sample / score_samples / summarize across tasks, with and without a judge (real local server)."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image, ImageDraw

from vthinker_plugins.sample import Sample
from vthinker_plugins.scoring import Judge, ascore_sample, score_sample, score_samples, summarize


def figure() -> Image.Image:
    image = Image.new("RGB", (300, 200), "white")
    ImageDraw.Draw(image).polygon([(30, 180), (270, 180), (150, 20)], outline="black", width=2)
    return image


def mark(image: Image.Image, xy: tuple[int, int], color: str = "red") -> Image.Image:
    out = image.copy()
    x, y = xy
    ImageDraw.Draw(out).ellipse([x - 4, y - 4, x + 4, y + 4], fill=color)
    return out


ORIGINAL = figure()
TRUTH = mark(ORIGINAL, (150, 20))
RIGHT = mark(ORIGINAL, (152, 22), "blue")
WRONG = mark(ORIGINAL, (40, 170), "blue")


def drawing(task: str, sid: str, question: str = "Mark the apex A.", annotation=TRUTH) -> Sample:
    return Sample(id=sid, question=question, images=[ORIGINAL], task=task, meta={"annotation": annotation})


def judge_for(server, **kwargs) -> Judge:
    return Judge(server.url, "judge", retries=kwargs.pop("retries", 1), backoff=0.01, timeout=5, **kwargs)


def test_mathvision_verdict_fields():
    sample = Sample(id="7", question="q", images=[ORIGINAL], answer="B", options=["1", "2", "3", "4", "5"],
                    task="mathvision", meta={"level": 3, "subject": "algebra"})
    verdict = score_sample(sample, "<think>t</think><answer>2</answer>")
    assert verdict == {"id": "7", "task": "mathvision", "correct": True, "extracted": "2", "judge": None,
                       "judge_status": "skipped", "correct_math_verify": True, "level": 3, "subject": "algebra"}


def test_reasoning_rules_without_judge():
    sample = Sample(id="r1", question="What is the area?", images=[ORIGINAL], answer="12", task="vtbench_reasoning")
    right = score_sample(sample, "<think>base 6, height 4</think><answer>\\boxed{12}</answer>")
    wrong = score_sample(sample, "<think>...</think><answer>13</answer>")
    none = score_sample(sample, "I could not solve it")
    assert (right["correct"], right["extracted"], right["rule_correct"]) == (True, "12", True)
    assert (wrong["correct"], none["correct"], none["extracted"]) == (False, False, None)
    assert right["judge_status"] == "skipped"


def test_reasoning_judge_fallback(fresh_server):
    judge = judge_for(fresh_server)
    sample = Sample(id="r2", question="How many triangles?", images=[ORIGINAL], answer="five",
                    task="vtbench_reasoning")
    by_rule = score_sample(Sample(id="r3", question="MODE:zero q", images=[ORIGINAL], answer="5",
                                  task="vtbench_reasoning"), "<answer>5</answer>", judge=judge)
    assert by_rule["correct"] and by_rule["judge_status"] == "skipped"  # rules settled it: no call
    by_judge = score_sample(sample, "<answer>5 triangles</answer>", judge=judge)
    assert (by_judge["rule_correct"], by_judge["judge"], by_judge["correct"]) == (False, 1, True)
    assert fresh_server.calls("") == 1 and fresh_server.calls("zero") == 0
    # The judge's own verdict decides: another count is wrong.
    judged_wrong = score_sample(sample, "<answer>6 triangles</answer>", judge=judge)
    assert (judged_wrong["rule_correct"], judged_wrong["judge"], judged_wrong["correct"]) == (False, 0, False)
    failed = score_sample(Sample(id="r4", question="MODE:down q", images=[ORIGINAL], answer="five",
                                 task="vtbench_reasoning"), "<answer>5</answer>", judge=judge)
    assert failed["correct"] is None and failed["judge_status"] == "failed" and "judge_error" in failed
    # "always": the judge decides every row (the official protocol); the rules are kept beside it
    overruled = score_sample(Sample(id="r5", question="MODE:zero q", images=[ORIGINAL], answer="5",
                                    task="vtbench_reasoning"), "<answer>5</answer>", judge=judge,
                             reasoning_judge="always")
    assert (overruled["rule_correct"], overruled["judge"], overruled["correct"]) == (True, 0, False)
    with pytest.raises(ValueError, match="reasoning_judge"):
        score_sample(sample, "<answer>5</answer>", reasoning_judge="sometimes")


def test_drawing_without_judge_uses_pixel_metric():
    right = score_sample(drawing("vtbench_perception", "p1"), "<answer>A</answer>", [RIGHT])
    wrong = score_sample(drawing("vtbench_perception", "p2"), "<answer>A</answer>", [WRONG])
    blank = score_sample(drawing("vtbench_instruction", "p3"), "no code", [])
    assert right["correct"] is True and right["pixel"]["passed"] and right["judge_status"] == "skipped"
    assert wrong["correct"] is False and not wrong["pixel"]["passed"]
    assert blank["correct"] is False and blank["no_image"] and blank["pixel"]["status"] == "nothing_drawn"


def test_drawing_annotation_may_be_bytes_or_path(tmp_path):
    buf = io.BytesIO()
    TRUTH.save(buf, format="PNG")
    path = tmp_path / "gt.png"
    path.write_bytes(buf.getvalue())
    for annotation in ({"bytes": buf.getvalue(), "path": None}, str(path)):
        verdict = score_sample(drawing("vtbench_perception", "b", annotation=annotation), "", [RIGHT])
        assert verdict["correct"] is True


def test_drawing_with_judge(fresh_server):
    judge = judge_for(fresh_server)
    agree = score_sample(drawing("vtbench_perception", "j1", "mark A"), "", [TRUTH.copy()], judge=judge)
    disagree = score_sample(drawing("vtbench_perception", "j2", "MODE:zero mark A"), "", [RIGHT], judge=judge)
    no_image = score_sample(drawing("vtbench_instruction", "j3", "MODE:one draw"), "", [], judge=judge)
    failed = score_sample(drawing("vtbench_instruction", "j4", "MODE:down draw"), "", [RIGHT], judge=judge)
    assert (agree["judge"], agree["correct"], agree["pixel"]["passed"]) == (1, True, True)
    assert (disagree["judge"], disagree["correct"], disagree["pixel"]["passed"]) == (0, False, True)
    assert (no_image["correct"], no_image["judge_status"]) == (False, "skipped")
    assert fresh_server.calls("one") == 0  # no image: no judge call
    assert (failed["correct"], failed["judge"], failed["judge_status"]) == (None, None, "failed")
    sent = fresh_server.requests[0]
    assert sent.image_labels == ["[Original]", "[Generated]", "[Ground Truth]"] and len(sent.image_sizes) == 3

    summary = summarize([agree, disagree, no_image, failed])
    perception, instruction = summary["vtbench_perception"], summary["vtbench_instruction"]
    assert perception["accuracy"] == 0.5 and perception["judge_pixel_n"] == 2
    assert perception["judge_pixel_agreement"] == 0.5 and perception["pixel_pass_rate"] == 1.0
    assert instruction["judge_failed"] == 1 and instruction["unscored"] == 1 and instruction["scored"] == 1
    assert instruction["accuracy"] == 0.0 and instruction["no_image"] == 1


def test_score_samples_runs_judge_calls_concurrently(fresh_server):
    fresh_server.slow_seconds = 0.4
    judge = judge_for(fresh_server, concurrency=8, retries=0)
    items = [(drawing("vtbench_perception", f"c{i}", "MODE:slow mark A"), "", [RIGHT if i % 2 else WRONG])
             for i in range(8)]
    items.append({"sample": Sample(id="g", question="q", images=[ORIGINAL], answer="4"), "prediction": "<answer>4"})
    verdicts = score_samples(items, judge=judge, progress=False)
    assert [v["id"] for v in verdicts] == [f"c{i}" for i in range(8)] + ["g"]
    # The judge looked at each drawing: RIGHT (odd i) passes, WRONG does not, and the accuracy is that share.
    assert [v["judge"] for v in verdicts[:8]] == [i % 2 for i in range(8)] and verdicts[8]["correct"] is True
    assert fresh_server.max_in_flight >= 4  # the judge calls overlapped
    summary = summarize(verdicts)
    assert summary["vtbench_perception"]["accuracy"] == 0.5
    assert summary["vtbench_perception"]["judge_pixel_agreement"] == 1.0
    assert summary["generic"]["accuracy"] == 1.0


def test_score_sample_inside_a_running_loop():
    async def caller():
        sync = score_sample(Sample(id="l", question="q", images=[ORIGINAL], answer="3"), "<answer>3</answer>")
        direct = await ascore_sample(Sample(id="l2", question="q", images=[ORIGINAL], answer="3"), "3")
        return sync, direct

    sync, direct = asyncio.run(caller())
    assert sync["correct"] and direct["correct"]


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        (Sample(id="m1", question="q", images=[ORIGINAL], task="mathvision"), "m1.*answer"),
        (Sample(id="m2", question="q", images=[ORIGINAL], task="vtbench_reasoning"), "m2.*answer"),
        (Sample(id="m3", question="q", images=[ORIGINAL], task="vtbench_perception"), "m3.*annotation"),
    ],
)
def test_missing_fields_are_clear_errors(sample, message):
    with pytest.raises(ValueError, match=message):
        score_sample(sample, "<answer>1</answer>", [RIGHT])


def test_broken_annotation_names_the_sample():
    with pytest.raises(ValueError, match="sample bad"):
        score_sample(drawing("vtbench_perception", "bad", annotation=b"not an image"), "", [RIGHT])


def test_mathvision_math_verify_flag_only_when_asked():
    sample = Sample(id="m1", question="q", images=[ORIGINAL], answer="\\sqrt{12}", task="mathvision",
                    meta={"level": 2, "subject": "algebra"})
    item = (sample, "<think>t</think><answer>2\\sqrt{3}</answer>")
    default = score_samples([item], progress=False)
    assert default[0]["correct"] is False and default[0]["correct_math_verify"] is None
    assert summarize(default)["mathvision"]["accuracy_math_verify"] is None  # not computed: not reported as 0
    asked = score_samples([item], progress=False, math_verify=True)
    assert asked[0]["correct"] is False and asked[0]["correct_math_verify"] is True
    assert summarize(asked)["mathvision"]["accuracy_math_verify"] == 1.0
