"""vLLM 0.33's ``LLM.generate`` on a CPU, minus the model: every step of vLLM's own front end runs.

``CPUFrontEnd.generate`` does what ``vllm.LLM.generate`` does (``entrypoints/common/offline.py``):
``parse_model_prompt`` and ``renderer.render_cmpl`` (the tokenizer, the HF processor and vLLM's
Qwen2.5-VL multimodal processor expanding image placeholders), ``InputProcessor.process_inputs``
(request validation, ``SamplingParams`` resolved against the model: logit-bias ids, stop tokens) to an
``EngineCoreRequest`` (``LLMEngine.add_request``); then the engine core's stop rule
(``v1.core.sched.utils.check_stop``: end of turn, token budget) over tokens emitted one step at a
time, and vLLM's ``OutputProcessor`` (the incremental detokenizer that finds stop strings, logprobs)
turning them into ``RequestOutput``\\ s.
Only the model is missing: the "sampled" tokens are a script (the CUDA build of vLLM has no CPU model
runner, and ``EngineArgs.create_engine_config`` fails without a device platform).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np


class CPUFrontEnd:
    """Stands in for ``vllm.LLM(model=path, ...)``; ``script(request) -> token ids`` plays the model."""

    def __init__(self, model: str, script, *, limit_images: int = 11, mm_processor_kwargs: dict | None = None,
                 max_model_len: int = 4096) -> None:
        from vllm.config import DeviceConfig, ModelConfig, VllmConfig
        from vllm.renderers import renderer_from_config
        from vllm.v1.engine.input_processor import InputProcessor
        from vllm.v1.engine.output_processor import OutputProcessor

        self.model_config = ModelConfig(model=model, tokenizer=model, dtype="float32", seed=0,
                                        limit_mm_per_prompt={"image": limit_images},
                                        mm_processor_kwargs=mm_processor_kwargs, max_model_len=max_model_len)
        self.vllm_config = VllmConfig(model_config=self.model_config, device_config=DeviceConfig(device="cpu"))
        self.renderer = renderer_from_config(self.vllm_config)
        self.input_processor = InputProcessor(self.vllm_config, self.renderer)
        self.output_processor = OutputProcessor(self.renderer.get_tokenizer(), log_stats=False)
        self.script = script
        self.requests: list[Any] = []  # the EngineCoreRequests, as the engine core would receive them
        self._counter = 0

    def generate(self, prompts: Sequence[Any], sampling_params: Sequence[Any], use_tqdm: bool = False) -> list[Any]:
        import vllm
        from vllm.renderers.inputs.preprocess import parse_model_prompt
        from vllm.sampling_params import RequestOutputKind

        inspect.signature(vllm.LLM.generate).bind(None, prompts, sampling_params=sampling_params, use_tqdm=use_tqdm)
        ids = []
        for prompt, params in zip(prompts, sampling_params, strict=True):
            (engine_input,) = self.renderer.render_cmpl([parse_model_prompt(self.model_config, prompt)],
                                                        self.renderer.default_cmpl_tok_params)
            params.output_kind = RequestOutputKind.FINAL_ONLY  # as LLM._add_request sets it
            request = self.input_processor.process_inputs(str(self._counter), engine_input, params,
                                                          supported_tasks=("generate",))
            self._counter += 1
            self.input_processor.assign_request_id(request)  # then LLMEngine.add_request's own steps
            self.output_processor.add_request(request, None, None, 0)
            self.requests.append(request)
            ids.append(request)
        return [self._run(request) for request in ids]

    def _run(self, request: Any) -> Any:
        from vllm.v1.core.sched.utils import check_stop
        from vllm.v1.engine import EngineCoreOutput, FinishReason
        from vllm.v1.outputs import LogprobsLists
        from vllm.v1.request import Request, RequestStatus

        state = Request.from_engine_core_request(request, block_hasher=None)
        tokens = list(self.script(request))
        finished = None
        for step, tok in enumerate(tokens):
            state.append_output_token_ids(tok)
            stopped = check_stop(state, self.model_config.max_model_len)
            reason = None
            if stopped:
                capped = state.status == RequestStatus.FINISHED_LENGTH_CAPPED
                reason = FinishReason.LENGTH if capped else FinishReason.STOP
            elif step == len(tokens) - 1:
                raise AssertionError(f"the script ran out before vLLM stopped request {request.request_id}")
            logprobs = None
            if request.sampling_params.logprobs is not None:
                logprobs = LogprobsLists(np.array([[tok]]), np.array([[-0.25]], dtype=np.float32), np.array([1]))
            out = EngineCoreOutput(request.request_id, [tok], new_logprobs=logprobs, finish_reason=reason,
                                   stop_reason=state.stop_reason)
            result = self.output_processor.process_outputs([out])
            done = [o for o in result.request_outputs if o.finished]
            if done or result.reqs_to_abort:  # a stop string (detokenizer) or the engine's stop rule
                finished = done[0] if done else None
                if result.reqs_to_abort:
                    self.output_processor.abort_requests(result.reqs_to_abort, internal=True)
                break
        if finished is None:
            raise AssertionError(f"vLLM returned no finished output for request {request.request_id}")
        return finished
