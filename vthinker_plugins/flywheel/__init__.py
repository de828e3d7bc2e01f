"""The data evolution flywheel: knowledge-driven synthesis of interactive-reasoning data.

- :mod:`.knowledge` (+ :mod:`.taxonomy`, :mod:`.evolve`): the versioned knowledge graph, its starter
  taxonomy and the evolve step that grows it with the generator LLM;
- :mod:`.tasks`, :mod:`.difficulty`: what to write (deterministic, shardable) and its harder variants;
- :mod:`.prompts`, :mod:`.problem`: the requests and the problems read from the replies;
- :mod:`.render`, :mod:`.checks`, :mod:`.checker`, :mod:`.checker_repairer`: the sandbox renders each
  problem, deterministic checks and an LMM checker review it, the generator repairs it;
- :mod:`.engine`, :mod:`.store`: concurrent, resumable runs; :mod:`.outputs`, :mod:`.report`: hub rows,
  summary, merged shards, HTML report; :mod:`.cli`: ``vthinker flywheel ...``;
- :mod:`.scripted`: a scripted stand-in LLM server (NOT a model) for the offline default, tests and
  benchmarks.
"""
