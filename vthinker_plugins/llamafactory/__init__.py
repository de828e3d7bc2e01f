"""LlamaFactory adapter: the ``vthinker_qwen2_vl`` template for V-Thinker's in-turn format.

Importing this package is cheap (it does not import LlamaFactory); the start-up hook in
:mod:`vthinker_plugins.llamafactory.hook` registers the template the moment LlamaFactory
imports its template registry, in every process (``llamafactory-cli`` and torchrun workers).
"""

TEMPLATE_NAME = "vthinker_qwen2_vl"
