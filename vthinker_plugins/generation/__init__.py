"""Token-level model I/O shared by evaluation backends and RL rollouts: segment encoding and per-trajectory
token states (:mod:`.tokens`), ``model.generate`` on jobs (:mod:`.transformers_generator`), and vLLM
requests (:mod:`.vllm_requests`). Framework-free: torch, PIL and the model's processor."""
