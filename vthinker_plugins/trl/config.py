"""Configuration of V-Thinker GRPO: TRL's ``GRPOConfig`` plus the interaction-loop, sandbox,
reward and judge settings. Every field is settable from a recipe YAML and the command line."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

#: Reward names the built-in suite knows, in the order they are logged.
REWARD_NAMES = ("accuracy", "format", "tool", "consistency")


@dataclass
class VThinkerGRPOConfig(GRPOConfig):
    """``GRPOConfig`` with V-Thinker's multi-turn code tool.

    Defaults follow the paper's RL stage where it states them (4 rounds, at most 10 tool
    images per rollout, rewards accuracy 1.0 / format 0.5 / consistency 0.5 / tool 0.3,
    tool and consistency rewards only for correct answers). ``max_completion_length`` is
    the token budget of a whole rollout: generated tokens plus observation tokens.
    """

    # ------------------------------------------------------------------ interaction loop
    max_rounds: int = field(default=4, metadata={"help": "Code executions per rollout (the paper's RL uses 4)."})
    max_tool_images: int = field(
        default=10, metadata={"help": "Sandbox images shown to the model per rollout; further images are announced."}
    )
    max_new_tokens_per_round: int | None = field(
        default=None,
        metadata={"help": "Token limit of one generation step (default: the whole max_completion_length)."},
    )
    persistent_state: bool = field(
        default=False, metadata={"help": "Keep Python state across the code blocks of one rollout."}
    )
    rollout_concurrency: int = field(
        default=256, metadata={"help": "Rollouts of one process in flight at once (generation is batched)."}
    )
    rollout_batch_size: int = field(
        default=64, metadata={"help": "Most generation requests handed to the model in one call."}
    )
    system_prompt_file: str | None = field(
        default=None,
        metadata={"help": "System prompt file (e.g. V-Thinker's official data/prompt.txt); default: built-in."},
    )
    user_prompt_file: str | None = field(
        default=None, metadata={"help": "User-turn template file with {images} and {question} fields."}
    )

    # ------------------------------------------------------------------ model inputs
    max_pixels: int | None = field(
        default=None, metadata={"help": "Largest image area the processor keeps (the paper's RL: 2408448)."}
    )
    min_pixels: int | None = field(default=None, metadata={"help": "Smallest image area the processor makes."})
    freeze_vision_tower: bool = field(
        default=True, metadata={"help": "Train the projector and the LLM, not the ViT (as in the paper)."}
    )

    # ------------------------------------------------------------------ sandbox
    sandbox_wall_time_s: float = field(default=10.0, metadata={"help": "Wall-clock limit of one code cell."})
    sandbox_memory_mb: int = field(default=2048, metadata={"help": "Memory a code cell may use, MiB."})
    sandbox_workers: int | None = field(
        default=None, metadata={"help": "Sandbox worker processes per training process (default: CPU count)."}
    )
    sandbox_isolation: str = field(default="auto", metadata={"help": "auto, namespaces or process."})

    # ------------------------------------------------------------------ rewards
    rewards: list[str] | None = field(
        default=None,
        metadata={
            "help": "Reward functions of the built-in suite, from accuracy, format, tool, consistency. Default: "
            "accuracy, format, tool, and consistency when a judge is configured."
        },
    )
    accuracy_weight: float = field(default=1.0, metadata={"help": "Weight of the accuracy reward."})
    format_weight: float = field(default=0.5, metadata={"help": "Weight of the format reward."})
    tool_weight: float = field(default=0.3, metadata={"help": "Weight of the tool-success reward."})
    consistency_weight: float = field(default=0.5, metadata={"help": "Weight of the consistency reward."})
    wrong_answer_reward: float = field(
        default=0.0, metadata={"help": "Accuracy reward of a wrong answer (the paper's normalised form uses -1)."}
    )
    gate_on_accuracy: bool = field(
        default=True, metadata={"help": "Zero the tool and consistency rewards when the answer is wrong."}
    )

    # ------------------------------------------------------------------ judge (OpenAI-compatible)
    judge_url: str | None = field(
        default=None, metadata={"help": "Base URL of an OpenAI-compatible judge (e.g. http://host:8000/v1)."}
    )
    judge_model: str | None = field(default=None, metadata={"help": "Judge model name."})
    judge_api_key_env: str = field(default="OPENAI_API_KEY", metadata={"help": "Environment variable of the key."})
    judge_timeout_s: float = field(default=60.0, metadata={"help": "Timeout of one judge request."})
    judge_retries: int = field(default=3, metadata={"help": "Retries of a failed or malformed judge reply."})
    judge_concurrency: int = field(default=8, metadata={"help": "Judge requests in flight at once."})
    accuracy_judge_fallback: bool = field(
        default=True, metadata={"help": "Ask the judge when the rule check says wrong (needs judge_url)."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_rounds < 0:
            raise ValueError(f"max_rounds must be >= 0, got {self.max_rounds}")
        if self.max_tool_images < 0:
            raise ValueError(f"max_tool_images must be >= 0, got {self.max_tool_images}")
        if self.rewards is not None:
            unknown = [name for name in self.rewards if name not in REWARD_NAMES]
            if unknown:
                raise ValueError(f"rewards: unknown {unknown}; choose from {list(REWARD_NAMES)}")
        if self.judge_url and not self.judge_model:
            raise ValueError("judge_url is set but judge_model is not")

    @property
    def has_judge(self) -> bool:
        return bool(self.judge_url and self.judge_model)

    def reward_names(self) -> list[str]:
        """The built-in rewards this run uses."""
        if self.rewards is not None:
            return list(self.rewards)
        return ["accuracy", "format", "tool", *(["consistency"] if self.has_judge else [])]

    def reward_weight(self, name: str) -> float:
        return float(getattr(self, f"{name}_weight"))
