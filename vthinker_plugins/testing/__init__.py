"""Test tooling shipped with the package: the tiny random Qwen2.5-VL checkpoint the offline tests,
benchmarks and smoke recipes run the real frameworks on (``vthinker make-tiny-model``), and scripted
generation (:mod:`.scripted`: the ``scripted:`` backend spec; :mod:`.scripted_grpo`: GRPO with scripted
rollouts). Production code imports nothing from here; ``scripted:`` reaches the backend registry as an entry point
(group ``vthinker_plugins.backends`` in setup.cfg)."""
