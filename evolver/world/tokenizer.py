"""The world model's tokenizer: byte-level BPE whose digits are always single tokens.

Byte-level means any text round-trips and nothing is unknown; digits one by one keep
the column arithmetic learnable; BPE merges turn the template and instruction words
into whole tokens, so sequences stay short.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evolver.reflection.instructions import default_pool
from evolver.reflection.prompts import REFLECTION_CUE, SOLUTION_CUE

PAD, EOS = "<pad>", "<eos>"
VOCAB_SIZE = 640


def template_texts() -> list[str]:
    """Every fixed text the world's prompts use: cues, verdict line, and the whole instruction pool."""
    from evolver.world.corpus import PLAN_HIGH, VERIFY_TEXT
    from evolver.world.task import ANSWER_FORMAT

    return [ANSWER_FORMAT, SOLUTION_CUE, REFLECTION_CUE, "\nQuestion:", "\nFailed solution:", "\nVerdict: incorrect.",
            "\nInstruction:", " wrong digits, first at place", " wrong digit,", "No Finish[answer] found.",
            *VERIFY_TEXT.values(), *(p for p in PLAN_HIGH.values()), " should be", " ok;", "Plan: redo from step", " kept", " fixed",
            *(i.text for i in default_pool())]


def build_tokenizer(texts: Iterable[str], out_dir: str | Path | None = None, vocab_size: int = VOCAB_SIZE) -> Any:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r" ?[0-9]"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(texts) + template_texts() * 50, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS)
    fast.padding_side = "left"
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast
