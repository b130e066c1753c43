"""Prompt templates shared by every model, the embedded one included.

The three plain-text templates nest: the trial-2 prompt is the reflection prompt
followed by the reflection and the solution cue. So one-stage training data
(reflection + corrected trial in one completion) is exactly what inference sees.
Gold answers never enter any template.
"""

from __future__ import annotations

from dataclasses import dataclass

SOLUTION_CUE = "\nSolution:"
REFLECTION_CUE = "\nReflection:"


@dataclass(frozen=True)
class PromptStyle:
    """'plain' for base models; 'chat' wraps the same text as one user turn via the chat template."""

    chat: bool = False


def trial_prompt(answer_format: str, question: str) -> str:
    return f"{answer_format}\nQuestion: {question}{SOLUTION_CUE}"


def reflect_prompt(answer_format: str, question: str, failed: str, feedback: str, instruction: str) -> str:
    fb = f" {feedback.strip()}" if feedback and feedback.strip() else ""
    return (f"{answer_format}\nQuestion: {question}\nFailed solution:{_lead(failed)}\n"
            f"Verdict: incorrect.{fb}\nInstruction: {instruction}{REFLECTION_CUE}")


def retry_prompt(reflect: str, reflection: str) -> str:
    """Trial-2 prompt: the exact reflection prompt, the reflection, then the solution cue."""
    return f"{reflect}{_lead(reflection)}{SOLUTION_CUE}"


def _lead(text: str) -> str:
    """Outputs are stored as generated; a leading space keeps 'Solution: ...' readable and tokenisation stable."""
    return text if text.startswith((" ", "\n")) else f" {text}"


def one_stage_completion(reflection: str, trial2: str) -> str:
    """Completion for one-stage SFT given the reflection prompt: reflection, cue, corrected trial."""
    return f"{_lead(reflection)}{SOLUTION_CUE}{_lead(trial2)}"
