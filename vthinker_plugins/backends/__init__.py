"""Model backends for the interaction loop, chosen by a spec string.

=====================  ==========================================================
spec                   backend
=====================  ==========================================================
``reference``          :class:`ReferenceBackend` — an oracle replaying reference code
``openai:MODEL``       :class:`OpenAIBackend` — any OpenAI-compatible chat endpoint
``vllm:PATH``          :class:`VLLMBackend` — vLLM offline engine (GPU; optional)
``NAME:PATH``          a backend another package registers under the entry-point group
                       ``vthinker_plugins.backends`` (this package's test tooling registers
                       ``scripted:PATH``, the HF backend following ``script=FILE``)
anything else          :class:`HFBackend` — a local checkpoint folder or hub id
=====================  ==========================================================

Backends import their heavy dependencies lazily, so ``make_backend("reference")``
loads neither torch nor openai.
"""

from __future__ import annotations

import re
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from vthinker_plugins.backend import Backend

_HUB_ID_RE = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_SPEC_PREFIX_RE = re.compile(r"([A-Za-z][\w-]*):(.*)", re.DOTALL)

#: Entry-point group of backend specs ``NAME:PATH`` added by other packages: each entry point is a
#: factory ``f(path, **options) -> Backend``, and ``PATH`` names a checkpoint folder or hub id.
BACKEND_ENTRY_POINT_GROUP = "vthinker_plugins.backends"
_BUILT_IN_PREFIXES = ("openai", "vllm")


def registered_backend(spec: str) -> tuple[EntryPoint, str] | None:
    """The entry point registered for ``spec``'s ``NAME:`` prefix and the rest of the spec, or ``None``."""
    match = _SPEC_PREFIX_RE.fullmatch(str(spec).strip())
    if match is None or match.group(1) in _BUILT_IN_PREFIXES:
        return None
    found = entry_points(group=BACKEND_ENTRY_POINT_GROUP, name=match.group(1))
    return (next(iter(found)), match.group(2)) if found else None


class ModelUnavailable(ValueError):
    """A model spec that names nothing loadable: a missing folder, a folder without a checkpoint, a hub id
    the hub cannot serve now."""


def check_model(spec: str) -> None:
    """Fail in seconds, before anything is loaded or written, when ``spec`` cannot be loaded: a checkpoint
    path (or ``vllm:PATH``) that does not exist or holds no ``config.json``, or a hub id that is neither
    cached (offline mode) nor downloadable (the hub does not answer). Raises :class:`ModelUnavailable`."""
    spec = str(spec).strip()
    if spec == "reference":
        return
    if spec.startswith("openai:"):
        if not spec.split(":", 1)[1].strip():
            raise ModelUnavailable("openai: needs the served model's name, e.g. openai:gpt-4o")
        return
    plugin = registered_backend(spec)
    if plugin is not None:
        name = plugin[1]
    else:
        name = spec.split(":", 1)[1] if spec.startswith("vllm:") else spec
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelUnavailable(f"{name} is not a checkpoint folder (no config.json in it)")
        return
    if not _HUB_ID_RE.fullmatch(name):
        prefix = _SPEC_PREFIX_RE.fullmatch(name)
        hint = ""
        if prefix is not None and plugin is None:
            known = sorted({*_BUILT_IN_PREFIXES, *entry_points(group=BACKEND_ENTRY_POINT_GROUP).names})
            hint = f"; {prefix.group(1)}: is no backend spec (known: {', '.join(p + ':' for p in known)})"
        raise ModelUnavailable(f"no such checkpoint folder: {name} (and not a hub id like "
                               f"Qwen/Qwen2.5-VL-7B-Instruct){hint}")
    from vthinker_plugins import hub

    if hub.offline():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(name, "config.json"), str):
            raise ModelUnavailable(f"{name} is not a local folder, and offline mode is on (HF_HUB_OFFLINE=1) "
                                   "with no cached copy of it")
        return
    reason = hub.unreachable_reason()
    if reason is not None:
        raise ModelUnavailable(f"{name} is not a local folder, and the Hugging Face hub cannot be reached to "
                               f"download it: {reason}")


def make_backend(spec: str, **options: Any) -> Backend:
    """Build the backend named by ``spec``; ``options`` go to its constructor.

    >>> make_backend("reference")
    >>> make_backend("openai:gpt-4o", base_url="http://127.0.0.1:8000/v1", api_key="x")
    >>> make_backend("/models/V-Thinker-7B", device="cuda", max_pixels=2_408_448)
    """
    spec = str(spec).strip()
    if not spec:
        raise ValueError("empty model spec; use 'reference', 'openai:NAME', 'vllm:PATH' or a checkpoint path")
    if spec == "reference":
        from .reference import ReferenceBackend

        if options:
            raise ValueError(f"the reference oracle takes no options (got {sorted(options)})")
        return ReferenceBackend()
    if spec.startswith("openai:"):
        from .openai_api import OpenAIBackend

        return OpenAIBackend(spec.split(":", 1)[1], **options)
    if spec.startswith("vllm:"):
        from .vllm import VLLMBackend

        return VLLMBackend(spec.split(":", 1)[1], **options)
    plugin = registered_backend(spec)
    if plugin is not None:
        entry_point, path = plugin
        return entry_point.load()(path, **options)
    from .hf import HFBackend

    return HFBackend(spec, **options)


#: Backend options that change where or how fast the model is reached, not what it generates: they are
#: left out of a run's identity (a resumed run may move to another device or endpoint), and ``api_key``
#: is never written to an output folder.
TRANSPORT_OPTIONS = frozenset({"device", "base_url", "api_key", "timeout", "max_retries", "max_batch_size"})


def is_transport_option(key: str) -> bool:
    return key.strip().replace("-", "_") in TRANSPORT_OPTIONS


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """``["device=cuda", "max_pixels=4194304", "max_batch_size=8"]`` -> typed dict (ints, floats, bools)."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"model option {pair!r}: expected KEY=VALUE")
        key, raw = pair.split("=", 1)
        value: Any = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            for cast in (int, float):
                try:
                    value = cast(raw)
                    break
                except ValueError:
                    continue
        options[key.strip().replace("-", "_")] = value
    return options


__all__ = ["Backend", "ModelUnavailable", "check_model", "make_backend", "parse_options"]
