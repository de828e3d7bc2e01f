"""answers_match: the rule-based equivalence used by RL rewards and VTBench reasoning."""

from __future__ import annotations

import threading

import pytest

from vthinker_plugins.scoring.answers import answers_match, choice_letter

OPTIONS = ["12", "15", "\\frac{1}{2}", "Wednesday", "none of these"]


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        ("5", "5", True), ("5.0", "5", True), ("05", "5", True), ("6", "5", False),
        ("\\frac{1}{2}", "0.5", True), ("1/2", "\\frac{1}{2}", True), ("\\dfrac{2}{4}", "0.5", True),
        ("2\\sqrt{3}", "\\sqrt{12}", True), ("3.46", "2\\sqrt{3}", False),
        ("$x = 5$", "5", True), ("5 cm", "5", True), ("30^\\circ", "30", True), ("30°", "30", True),
        ("(3, -4)", "(3,-4)", True), ("(-4, 3)", "(3,-4)", False),
        ("1,000", "1000", True), ("\\boxed{7}", "7", True),
        ("Wednesday", "wednesday", True), ("  Yes. ", "yes", True), ("no", "yes", False),
        ("", "5", False), ("5", "", False), (None, "5", False),
        ("\\pi", "\\pi", True), ("2\\pi", "6.28", False),
        # Percentages however written (math-verify reads % as a comment inside \\boxed{}).
        ("25\\%", "25%", True), ("25 %", "25%", True), ("25.0%", "25%", True), ("25%", "25\\%", True),
        ("26%", "25%", False), ("25\\%", "26%", False),
    ],
)
def test_free_form(prediction, gold, expected):
    assert answers_match(prediction, gold) is expected


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        ("B", "B", True), ("(b)", "B", True), ("B.", "B", True), ("B) 15", "B", True), ("Option B", "B", True),
        ("The answer is B", "B", True), ("answer: B", "B", True), ("C", "B", False),
        ("15", "B", True), ("15.0", "B", True), ("12", "B", False),  # the text of the gold option
        ("0.5", "C", True), ("Wednesday", "D", True),
        ("B", "15", True), ("A", "15", False),  # a predicted letter against a written-out gold
        ("A triangle", "A", False),  # a word starting with a letter is not a choice
        ("F", "B", False),  # not an option
    ],
)
def test_multiple_choice(prediction, gold, expected):
    assert answers_match(prediction, gold, OPTIONS) is expected


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [("B", True), ("(B)", True), ("B. 4 cm", True), ("Option B", True), ("C", False), ("b", True), ("4", False)],
)
def test_letter_gold_without_options(prediction, expected):
    # VTBench reasoning writes the choices inside the question; only the letter is the gold answer.
    assert answers_match(prediction, "B") is expected


def test_choice_letter_respects_option_count():
    assert choice_letter("E", 5) == "E" and choice_letter("E", 4) is None
    assert choice_letter("x", 26) is None or choice_letter("x", 26) == "X"
    assert choice_letter("12", 5) is None


def test_works_off_the_main_thread():
    # math-verify's SIGALRM timeouts only work in the main thread; reward functions may run elsewhere.
    results = []
    thread = threading.Thread(target=lambda: results.append(answers_match("\\frac{3}{6}", "0.5")))
    thread.start()
    thread.join()
    assert results == [True]
