"""The data evolution flywheel: knowledge-driven synthesis of interactive-reasoning data.

A versioned knowledge graph (grown by the generator LLM) plans the tasks; the generator writes
problems that the sandbox renders, deterministic checks and an LMM checker review, and the generator
repairs. Accepted problems get harder variants and become V-Interaction / V-Perception rows. Runs
are concurrent, resumable and shardable; a scripted server (not a model) makes them run offline.

Module map and design notes: docs/data.md.
"""
