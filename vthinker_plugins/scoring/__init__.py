"""Scoring and judges shared by ``vthinker run``, the lmms-eval and VLMEvalKit plugins and the GRPO rewards.

One package, so every consumer reports the same numbers: rule-based answer matching
(:func:`answers_match`), the official MATH-V, We-Math and VisuLogic rules and reports, an
OpenAI-compatible 0/1 :class:`Judge`, the judge-free VTBench :func:`pixel_metric`, and the per-task
entry points (:func:`score_sample`, :func:`summarize`, ...).

Design notes: docs/scoring.md.
"""

from vthinker_plugins.scoring.answers import answers_match, choice_letter
from vthinker_plugins.scoring.judge import DEFAULT_JUDGE_PROMPTS, Judge, JudgeResult, parse_judgement
from vthinker_plugins.scoring.mathvision import (
    extract_mathvision_answer,
    mathvision_correct,
    mathvision_report,
    score_mathvision,
)
from vthinker_plugins.scoring.pixel_metric import PixelMetricConfig, PixelScore, pixel_metric
from vthinker_plugins.scoring.score import (
    ascore_sample,
    null_accuracy_reason,
    score_sample,
    score_samples,
    summarize,
)
from vthinker_plugins.scoring.visulogic import extract_visulogic_answer, score_visulogic, visulogic_report
from vthinker_plugins.scoring.wemath import extract_wemath_answer, score_wemath, wemath_report, wemath_scores

__all__ = [
    "DEFAULT_JUDGE_PROMPTS",
    "Judge",
    "JudgeResult",
    "PixelMetricConfig",
    "PixelScore",
    "answers_match",
    "ascore_sample",
    "choice_letter",
    "extract_mathvision_answer",
    "extract_visulogic_answer",
    "extract_wemath_answer",
    "mathvision_correct",
    "mathvision_report",
    "null_accuracy_reason",
    "parse_judgement",
    "pixel_metric",
    "score_mathvision",
    "score_sample",
    "score_samples",
    "score_visulogic",
    "score_wemath",
    "summarize",
    "visulogic_report",
    "wemath_report",
    "wemath_scores",
]
