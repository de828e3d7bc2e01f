"""The one version check of every framework seam module (``*/compat.py``, ``transformers_compat``).

Each seam names the upstream versions it was written against and what to re-check on another one;
a mismatch is a single clear error, raised before any private name is touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def check_tested_versions(seam: str, tested: Mapping[str, Sequence[str]], found: Mapping[str, str | None],
                          recheck: str) -> None:
    """Raise unless each distribution in ``found`` (``None``: the installed one) is one of its ``tested``
    versions. ``seam`` is the module's dotted name under ``vthinker_plugins``; ``recheck`` names the
    upstream code to read again before updating it."""
    from importlib.metadata import version as installed

    actual = {name: v if v is not None else installed(name) for name, v in found.items()}
    if all(actual[name] in versions for name, versions in tested.items()):
        return
    written = " on ".join(f"{name} {' and '.join(versions)}" for name, versions in tested.items())
    have = " on ".join(actual.values()) if len(actual) == 1 else " on ".join(f"{n} {v}" for n, v in actual.items())
    raise RuntimeError(
        f"vthinker_plugins.{seam} was written against {written}, found {have}: re-check {recheck}, then update "
        f"vthinker_plugins/{seam.replace('.', '/')}.py"
    )
