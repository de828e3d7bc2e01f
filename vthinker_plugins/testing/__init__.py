"""Test tooling shipped with the package: the tiny random Qwen2.5-VL checkpoint the offline tests,
benchmarks and smoke recipes run the real frameworks on (``vthinker make-tiny-model``). Scripted
generation is the ``scripted:`` backend spec (:mod:`vthinker_plugins.backends.scripted`). Production
code imports nothing from here."""
