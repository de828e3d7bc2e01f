"""Numeric value of a short LaTeX answer, with the semantics MathVision's official scoring relies on.

The official MATH-V evaluator parses an answer with SymPy, prints the expression and evaluates the
printed text as plain Python. This module reproduces the outcome of that pipeline directly (own
recursive-descent parser, no SymPy, no ANTLR): pure arithmetic evaluates, anything printed with a
name gives ``None``; ``math_module=True`` models the MATH-V repository's more lenient evaluator.

Design notes (the exact rules): docs/scoring.md.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from functools import lru_cache

Number = int | float

# Exponents above this are refused: the printed expression would be a huge integer and
# nobody writes such an answer; refusing keeps scoring fast on adversarial text.
_MAX_EXPONENT = 4096

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+|\\\$)  # whitespace and an escaped dollar are ignored; spacing commands (\, \;) are errors
    |(?P<num>\d+(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)  # 1,000,000 / 12 / 12.5 / .5
    |(?P<cmd>\\[a-zA-Z]+|\\%|\\\\)
    |(?P<word>[pbv]?matrix|arc?(?:sinh|cosh|tanh)|gcd|lcm|floor|ceil)  # bare keywords of the LaTeX grammar
    |(?P<letter>[a-zA-Z])
    |(?P<op>[-+*/:^()\[\]{}&'_.])
    |(?P<other>.)
    """,
    re.X | re.S,
)

_IGNORED_COMMANDS = {"\\left", "\\right", "\\displaystyle"}
_MUL_COMMANDS = {"\\times", "\\cdot", "\\ast"}
_FRAC_COMMANDS = {"\\frac", "\\dfrac", "\\tfrac"}
_OPEN_CLOSE = {"(": ")", "{": "}", "[": "]"}
# Tokens that cannot continue an expression: at the top level, after a complete expression,
# parsing ends there and the rest is ignored ("3cm" is 3, "3r^2" is 3, "(3)x" is 3); anywhere
# else they are an error. The letters c and r and the bare words *matrix are such tokens in
# the LaTeX grammar the official scorer uses; every other letter is a symbol and the other bare
# keywords (gcd, floor, ...) are functions, which make the answer unevaluable.
_STOP_TOKENS = {"c", "r", ")", "]", "}", "&", "\\\\", "'", "_", ".", "matrix", "pmatrix", "bmatrix", "vmatrix"}


#: What the MATH-V repository's parser (latex2sympy2 >= 1.9) removes before parsing (``math_module=True``).
_MATH_MODULE_SPACES = ("\\$", "$", "~", "\\,", "\\quad", "\\qquad", "\\displaystyle")
_MATH_MODULE_PARENS = (("\\bigl(", "("), ("\\bigr)", ")"))


class _Fail(Exception):
    """The text is not pure arithmetic (the official evaluation would raise)."""


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    for match in _TOKEN_RE.finditer(text):
        kind = match.lastgroup or "other"
        value = match.group()
        if kind == "ws" or (kind == "cmd" and value in _IGNORED_COMMANDS):
            continue
        tokens.append((kind, value))
    return tokens


def _literal(text: str) -> Number:
    """A decimal literal: exact value, printed as an integer or as ``p/q`` (→ float)."""
    exact = Fraction(text.replace(",", "").rstrip(".") or "0")
    if exact.denominator == 1:
        return int(exact)
    return exact.numerator / exact.denominator


def _check(value: object) -> Number:
    if isinstance(value, complex) or not isinstance(value, int | float):
        raise _Fail("not a real number")
    return value


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], math_module: bool = False):
        self.tokens = tokens
        self.pos = 0
        self.math_module = math_module  # sqrt(x) and pi evaluate (see the module doc)

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise _Fail(f"expected {value}")
        self.pos += 1
        return token

    def parse(self) -> Number:
        value = self.expr()
        token = self.peek()
        if token is not None and token[1] not in _STOP_TOKENS:
            raise _Fail("trailing text")
        return value

    def expr(self) -> Number:
        value = self.term()
        while (token := self.peek()) is not None and token[1] in "+-":
            self.pos += 1
            right = self.term()
            value = value + right if token[1] == "+" else value - right
        return _check(value)

    def _starts_atom(self, token: tuple[str, str]) -> bool:
        kind, value = token
        if kind == "letter":  # a symbol: the implicit product is attempted (and fails in atom)
            return value not in _STOP_TOKENS
        return kind == "num" or value in ("(", "{", "[") or value in _FRAC_COMMANDS or value in ("\\sqrt", "\\pi")

    def term(self) -> Number:
        value = self.unary()
        while (token := self.peek()) is not None:
            text = token[1]
            if text in ("*", "/", ":", "\\div") or text in _MUL_COMMANDS:
                self.pos += 1
                right = self.unary()
                value = value * right if (text == "*" or text in _MUL_COMMANDS) else _divide(value, right)
            elif self._starts_atom(token):  # implicit product: 2(3), 2{3}, 2\frac{1}{2}
                value = value * self.power()
            else:
                break
        return _check(value)

    def unary(self) -> Number:
        token = self.peek()
        if token is not None and token[1] in "+-":
            self.pos += 1
            value = self.unary()
            return -value if token[1] == "-" else value
        return self.power()

    def power(self) -> Number:
        value = self.postfix()
        while (token := self.peek()) is not None and token[1] == "^":
            self.pos += 1
            exponent, from_half_literal = self.exponent()
            if from_half_literal and not self.math_module:  # SymPy prints x**0.5 as sqrt(x): a name
                raise _Fail("sqrt")
            if abs(exponent) > _MAX_EXPONENT:
                raise _Fail("exponent too large")
            try:
                value = _check(value**exponent)
            except (OverflowError, ZeroDivisionError) as exc:
                raise _Fail("power") from exc
        return value

    def exponent(self) -> tuple[Number, bool]:
        """The exponent, and whether it was written as the decimal 0.5 or -0.5 (bare or braced)."""
        start = self.pos
        token = self.peek()
        if token is not None and token[1] == "-":
            self.pos += 1
            value = -self.atom()
        else:
            value = self.atom()
        written = [text for _, text in self.tokens[start : self.pos]]
        if len(written) > 2 and written[0] == "{" and written[-1] == "}":
            written = written[1:-1]
        last = written[-1]
        half = (
            len(written) <= 2
            and written[0] in (last, "-")
            and "." in last
            and last[0] in ".0123456789"
            and abs(Fraction(last.replace(",", "").rstrip("."))) == Fraction(1, 2)
        )
        return value, half

    def postfix(self) -> Number:
        value = self.atom()
        while (token := self.peek()) is not None and token[1] == "\\%":
            self.pos += 1
            value = _percent(value)
        return value

    def atom(self) -> Number:
        kind, text = self.take()
        if kind == "num":
            return _literal(text)
        if text in _OPEN_CLOSE:
            value = self.expr()
            self.take(_OPEN_CLOSE[text])
            return value
        if text in _FRAC_COMMANDS:
            numerator = self.braced()
            denominator = self.braced()
            return _divide(numerator, denominator)
        if text == "\\pi":
            if not self.math_module:  # printed as the name pi
                raise _Fail(text)
            return math.pi
        if text == "\\sqrt":
            # Only the n-th root form prints as a power (x**(1/n)); \sqrt{x} prints as sqrt(x), a name
            # that only the math module evaluates.
            if self.peek() is None or self.peek()[1] != "[":
                return self._square_root(self.braced())
            self.take("[")
            index = self.expr()
            self.take("]")
            radicand = self.braced()
            if index == 2:
                return self._square_root(radicand)
            try:
                return _check(radicand ** _divide(1, index))
            except (OverflowError, ZeroDivisionError) as exc:
                raise _Fail("root") from exc
        raise _Fail(text)

    def _square_root(self, radicand: Number) -> float:
        if not self.math_module:
            raise _Fail("sqrt")
        if radicand < 0:
            raise _Fail("math domain error")
        return math.sqrt(radicand)

    def braced(self) -> Number:
        self.take("{")
        value = self.expr()
        self.take("}")
        return value


def _divide(a: Number, b: Number) -> float:
    if b == 0:
        raise _Fail("division by zero")
    try:
        return a / b
    except OverflowError as exc:
        raise _Fail("overflow") from exc


def _percent(value: Number) -> Number:
    exact = Fraction(value) / 100
    return int(exact) if exact.denominator == 1 else exact.numerator / exact.denominator


@lru_cache(maxsize=65536)
def latex_value(text: str, *, math_module: bool = False) -> Number | None:
    """The number a short LaTeX answer denotes, or ``None`` when it is not pure arithmetic.

    ``math_module=True``: the MATH-V repository evaluator's semantics (module doc), where
    ``\\sqrt{x}`` and ``\\pi`` are numbers and ``$``/``~``/``\\,`` are ignored.

    >>> latex_value("\\\\frac{3}{4}"), latex_value("2^{10}"), latex_value("1,000"), latex_value("2\\\\sqrt{3}")
    (0.75, 1024, 1000, None)
    >>> round(latex_value("$2 \\\\sqrt{13}$", math_module=True), 4), round(latex_value("2\\\\pi", math_module=True), 4)
    (7.2111, 6.2832)
    """
    try:
        if math_module:
            for old in _MATH_MODULE_SPACES:
                text = text.replace(old, " ")
            for old, new in _MATH_MODULE_PARENS:
                text = text.replace(old, new)
        tokens = _tokenize(text)
        if not tokens:
            return None
        return _Parser(tokens, math_module).parse()
    except (_Fail, ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None
