"""V-Thinker as plugins: protocol, interaction loop, and adapters for LlamaFactory, TRL, lmms-eval and VLMEvalKit."""

__version__ = "0.1.0"
