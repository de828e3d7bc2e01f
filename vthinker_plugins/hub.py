"""Whether the Hugging Face hub can serve a download now, answered in seconds.

``datasets`` and ``transformers`` retry a failing connection with backoff (a minute or more per
file) before they give up with a traceback; one short request first turns that into a clear error.
In offline mode (``HF_HUB_OFFLINE=1`` / ``HF_DATASETS_OFFLINE=1``) nothing is probed: only cached
copies load, and the caller reports a miss. ``VTHINKER_HUB_TIMEOUT`` (seconds, default 5) bounds the
probe; the endpoint is ``huggingface_hub``'s (``HF_ENDPOINT``).
"""

from __future__ import annotations

import functools
import os

DEFAULT_TIMEOUT_S = 5.0


def offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` is set (as the libraries read them)."""
    import huggingface_hub.constants

    if huggingface_hub.constants.HF_HUB_OFFLINE:
        return True
    try:
        import datasets.config
    except ImportError:
        return False
    return bool(datasets.config.HF_DATASETS_OFFLINE)


def _timeout() -> float:
    raw = os.environ.get("VTHINKER_HUB_TIMEOUT", "")
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        raise ValueError(f"VTHINKER_HUB_TIMEOUT={raw!r} is not a number of seconds") from None
    return value if value > 0 else DEFAULT_TIMEOUT_S


@functools.lru_cache(maxsize=4)
def _probe(endpoint: str, timeout: float) -> str | None:
    from huggingface_hub.utils import get_session

    try:
        get_session().head(endpoint, timeout=timeout)  # any HTTP answer: the hub is there
    except Exception as exc:  # noqa: BLE001 - connection refused, DNS, timeout, TLS, proxy ...
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no answer'}"[:300]
    return None


def unreachable_reason() -> str | None:
    """``None`` when the hub answers (or offline mode is on: then only the cache is used), else why it does
    not, naming the endpoint and the timeout (the answer is kept for the process)."""
    if offline():
        return None
    import huggingface_hub.constants

    endpoint, timeout = huggingface_hub.constants.ENDPOINT, _timeout()
    reason = _probe(endpoint, timeout)
    return None if reason is None else f"{endpoint} did not answer within {timeout:g} s ({reason})"
