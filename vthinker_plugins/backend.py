"""The model I/O contract: a :class:`Backend` continues partial assistant turns that contain images.

The interaction loop (:mod:`vthinker_plugins.loop`) drives every backend through this interface
(``backends/`` for evaluation, the GRPO trainer's policy for RL).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from vthinker_plugins.protocol import STOP_STRINGS
from vthinker_plugins.sample import Sample


@dataclass
class GenerationRequest:
    """Continue the assistant turn of one trajectory.

    ``user`` and ``assistant_prefix`` contain one ``<image>`` placeholder per entry
    of ``images``, in order (user images first, then tool images). A backend
    renders ``system`` + ``user`` with the model's chat template, opens the
    assistant turn, appends ``assistant_prefix`` verbatim and generates.
    """

    key: str  # the trajectory's id: lets a backend keep per-trajectory state (KV cache)
    system: str
    user: str
    assistant_prefix: str
    images: list[Image.Image]
    max_new_tokens: int
    stop: tuple[str, ...] = STOP_STRINGS
    temperature: float = 0.0
    top_p: float = 1.0
    #: The sample being answered. Ordinary backends ignore it; the ``reference`` oracle and
    #: scripted test models read the sample's id, reference code and answer from it.
    sample: Sample | None = None


@dataclass
class GenerationOutput:
    """What a backend produced for one request.

    ``text`` includes the stop string that ended it (``</code>``/``</answer>``) and
    excludes the end-of-turn token. ``finish_reason``: ``stop`` (a stop string),
    ``eos`` (end of turn) or ``length`` (``max_new_tokens`` reached).
    """

    text: str
    finish_reason: str = "stop"
    token_ids: list[int] | None = None  # token-level backends (RL) report exact ids
    logprobs: list[float] | None = None


class Backend(abc.ABC):
    """A model that can continue a partial assistant turn that contains images."""

    name: str = "backend"
    #: Most requests handed to one :meth:`generate` call.
    max_batch_size: int = 8

    @abc.abstractmethod
    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationOutput]:
        """Generate for a batch of requests; outputs in request order."""

    def observation_token_ids(self, observation: str, images: Sequence[Image.Image]) -> list[int] | None:
        """Token ids of an observation (image placeholders expanded), for token-budgeted
        rollouts. Text-level backends return ``None`` and are not budgeted."""
        return None

    def release(self, key: str) -> None:
        """Forget per-trajectory state once a trajectory is finished."""

    def close(self) -> None:
        """Free the model."""
