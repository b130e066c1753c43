"""What an evaluation is: everything that can change an answer, hashed into its key.

Evaluation attempts and results are stored under this key. Re-running with the same key is a
cache hit, which is only right when nothing changed; so the key covers the base model's weights
(content hash of a local folder), the generation's adapter sha256, the backend, dtype, device and
prompt style, decoding, rounds, the instruction, the seed and the suite's content (the exact
questions and gold answers after any limit, and the suite's answer instruction with its worked
examples, which open every prompt). A model replaced in place, a changed adapter, new worked
examples or a different backend is a new key: the evaluation really runs again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evolver.config import LoadedConfig
from evolver.reflection.instructions import Instruction
from evolver.store import canonical_hash
from evolver.tasks.base import Item


def suite_hash(items: Sequence[Item]) -> str:
    return canonical_hash([[it.id, it.text, it.gold] for it in items])


def eval_identity(cfg: LoadedConfig, suite: str, items: Sequence[Item], base: str, adapter_sha256: str | None,
                  instruction: Instruction, device: str, answer_format: str, weights_dtype: str | None = None) -> dict[str, Any]:
    """`weights_dtype` is what the weights load in: it joins the key where "auto" depends on the model's
    size (CUDA: evolver.models.auto_dtype); keys on the CPU and of explicit dtypes stay as they were."""
    c = cfg.config
    dtype = f"auto:{weights_dtype}" if c.model.dtype == "auto" and device == "cuda" and weights_dtype else c.model.dtype
    return {
        "suite": suite, "suite_sha256": suite_hash(items), "n": len(items),
        "base": base, "adapter_sha256": adapter_sha256,
        "backend": c.generation.backend, "dtype": dtype, "device": device, "prompt_style": c.model.prompt_style,
        "trial_tokens": c.generation.trial.max_new_tokens, "reflect_tokens": c.generation.reflection.max_new_tokens,
        "rounds": c.evaluation.max_rounds, "instruction": [instruction.id, instruction.text], "seed": c.seed,
        "prompt_sha256": canonical_hash(answer_format),
    }


def eval_key(identity: dict[str, Any]) -> str:
    return canonical_hash(identity)


QUESTION_SET = ("suite_sha256", "n", "rows")  # the identity's keys that name its questions


def same_but_questions(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two evaluations of the same model under the same settings that differ at most in their questions.
    Evaluation decodes greedily, so a question they share gets the same answers in both."""
    return {k: v for k, v in a.items() if k not in QUESTION_SET} == {k: v for k, v in b.items() if k not in QUESTION_SET}
