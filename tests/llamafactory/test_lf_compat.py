"""The LlamaFactory seam is pinned, and plain LlamaFactory processes get its checkpoint fix."""

from __future__ import annotations

import subprocess

import pytest

from vthinker_plugins.llamafactory.compat import check_versions

PROBE = """
from vthinker_plugins.llamafactory.compat import check_versions
check_versions()
from llamafactory.train.sft import workflow
from vthinker_plugins.transformers_compat import CheckpointWeightsMixin
print("PATCHED", issubclass(workflow.CustomSeq2SeqTrainer, CheckpointWeightsMixin))
print("NAME", workflow.CustomSeq2SeqTrainer.__qualname__)
"""


def test_sft_environment_has_the_tested_versions_and_a_patched_trainer(sft_bin, lf_env) -> None:
    """In the SFT environment (its .pth hook, as llamafactory-cli gets it) the trainer LlamaFactory's
    SFT workflow uses is the patched one."""
    proc = subprocess.run([str(sft_bin / "python"), "-c", PROBE], env=lf_env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "PATCHED True" in proc.stdout and "NAME CustomSeq2SeqTrainer" in proc.stdout


def test_another_version_fails_clearly() -> None:
    with pytest.raises(RuntimeError, match=r"LlamaFactory 0\.9\.5 on transformers 5\.6\.0, found LlamaFactory 0\.9\.6"):
        check_versions("0.9.6", "5.6.0")
    with pytest.raises(RuntimeError, match=r"transformers 5\.6\.0 and 5\.18\.0, found 5\.7\.0"):
        check_versions("0.9.5", "5.7.0")


def test_no_private_llamafactory_name_outside_the_seam() -> None:
    """Overrides of LlamaFactory's private methods live in llamafactory/compat.py only."""
    import re
    from pathlib import Path

    import vthinker_plugins.llamafactory as package

    private = re.compile(r"\bdef _encode\b|\._encode\(|\b_load_from_checkpoint\b|\b_load_best_model\b")
    offenders = [path.name for path in Path(package.__file__).parent.glob("*.py")
                 if path.name != "compat.py" and private.search(path.read_text(encoding="utf-8"))]
    assert not offenders, f"private LlamaFactory/transformers names outside the seam: {offenders}"
