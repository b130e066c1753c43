"""The ReflectEvo loop, batched by stage: all trial-1 prompts → all reflections → all retries → next round.

Every stage reads what the store already holds and produces only what is missing, so an
interrupted run resumes where it stopped. Seeds are derived per item (generation, purpose,
question, trial, branch), so resuming or re-batching samples exactly the same texts.
Prompts are stored exactly as sent, before any output exists: no answer can leak into them.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from evolver.backends.base import Adapter, Backend, Sampling
from evolver.reflection import prompts
from evolver.reflection.instructions import Instruction
from evolver.store import Store
from evolver.tasks.base import Item, Task, Verdict

Picker = Callable[[str, int, int], Instruction]  # (question key, round, branch) -> instruction
Progress = Callable[..., None]  # (label, done, total, **counts): evolver.context.Progress


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts: stable across processes, batchings and resumptions."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "big") >> 1


def uniform_picker(pool: Sequence[Instruction], seed: int, generation: int) -> Picker:
    def pick(qkey: str, rnd: int, branch: int) -> Instruction:
        return random.Random(derive_seed(seed, "instruction", generation, qkey, rnd, branch)).choice(list(pool))
    return pick


def cycle_picker(pool: Sequence[Instruction]) -> Picker:
    return lambda qkey, rnd, branch: pool[branch % len(pool)]


def fixed_picker(instruction: Instruction) -> Picker:
    return lambda qkey, rnd, branch: instruction


@dataclass(frozen=True)
class LoopSpec:
    """How to run the loop for one purpose ('pool', 'eval:<suite>', 'eval-fixed:<suite>')."""

    purpose: str
    k: int
    max_rounds: int
    trial: Sampling
    reflect: Sampling
    pick: Picker
    seed: int
    instructions: dict[str, Instruction] = field(default_factory=dict)  # id -> instruction, to rebuild retry prompts
    fixed_trial1: dict[int, int] | None = None  # question id -> attempt id of another generation's trial 1
    chunk: int = 512


@dataclass
class LoopStats:
    """The loop's work for one purpose, all attempts of its phase together (read back from the store, so a
    phase resumed after a crash reports what an uninterrupted one would)."""

    generated: dict[str, int] = field(default_factory=lambda: {"trial1": 0, "reflections": 0, "retries": 0})
    tokens_out: int = 0


@dataclass(frozen=True)
class _Failed:
    attempt_id: int
    question_id: int
    output: str
    feedback: str


# A base model may run past its part (a reflection straight into "Solution: ..."): cut there, so
# the next prompt holds exactly the part, as the nested templates expect.
REFLECTION_STOP = (prompts.SOLUTION_CUE,)
TRIAL_STOP = ("\nQuestion:", "\nVerdict:")


def with_stop(s: Sampling, stop: tuple[str, ...]) -> Sampling:
    """`s` that also ends at `stop` (each stop string once)."""
    return replace(s, stop=tuple(dict.fromkeys(s.stop + stop)))


def _sampling_json(s: Sampling) -> str:
    return json.dumps({"temperature": s.temperature, "top_p": s.top_p, "max_new_tokens": s.max_new_tokens}, sort_keys=True)


def run_loop(store: Store, backend: Backend, task: Task, items: dict[int, Item], generation: int, model_ref: str,
             adapter: Adapter | None, spec: LoopSpec, progress: Progress | None = None,
             check_stop: Callable[[], None] | None = None) -> LoopStats:
    """Run trial 1 and up to `max_rounds` reflect→retry rounds for `items` (question id -> Item)."""
    loop = _Loop(store, backend, task, items, generation, model_ref, adapter, spec,
                 progress or (lambda *_, **__: None), check_stop or (lambda: None))
    loop.trial1()
    for rnd in range(1, spec.max_rounds + 1):
        loop.reflect(rnd)
        loop.retry(rnd)
    trial1, retries, reflections, tokens = store.work_totals(generation, spec.purpose)
    return LoopStats({"trial1": trial1, "reflections": reflections, "retries": retries}, tokens)


class _Loop:
    def __init__(self, store: Store, backend: Backend, task: Task, items: dict[int, Item], generation: int,
                 model_ref: str, adapter: Adapter | None, spec: LoopSpec, progress: Progress,
                 check_stop: Callable[[], None]) -> None:
        self.store, self.backend, self.task, self.items = store, backend, task, items
        self.gen, self.model_ref, self.adapter, self.spec = generation, model_ref, adapter, spec
        self.progress, self.check_stop = progress, check_stop

    def _qkey(self, qid: int) -> str:
        return f"{self.task.name}:{self.items[qid].id}"

    def _seed(self, kind: str, qid: int, trial: int, branch: int) -> int:
        return derive_seed(self.spec.seed, self.gen, self.spec.purpose, kind, self._qkey(qid), trial, branch)

    def _attempts(self) -> dict[tuple[int, int, int], object]:
        return {(a.question_id, a.trial, a.branch): a for a in self.store.attempts(self.gen, self.spec.purpose)}

    def _chunks(self, seq: list, label: str):  # noqa: ANN202
        total = len(seq)
        for start in range(0, total, self.spec.chunk):
            self.check_stop()
            yield seq[start:start + self.spec.chunk]
            self.progress(label, min(start + self.spec.chunk, total), total, tokens=self.stats.tokens_out)

    def _attempt_row(self, qid: int, trial: int, branch: int, prompt: str, seed: int, sampling: Sampling,
                     text: str, tokens_in: int, tokens_out: int, verdict: Verdict) -> dict:
        return dict(generation_id=self.gen, purpose=self.spec.purpose, question_id=qid, trial=trial, branch=branch,
                    backend=self.backend.name, model_ref=self.model_ref, sampling=_sampling_json(sampling), seed=seed,
                    prompt=prompt, output=text, answer=verdict.answer, correct=verdict.correct, reason=verdict.reason,
                    feedback=verdict.feedback or None, tokens_in=tokens_in, tokens_out=tokens_out)

    # -- stage 1 -----------------------------------------------------------------------------
    def trial1(self) -> None:
        if self.spec.fixed_trial1 is not None:
            return
        have = self._attempts()
        todo = [qid for qid in self.items if (qid, 1, 0) not in have]
        for chunk in self._chunks(todo, "trial 1"):
            sent = [self.backend.render(prompts.trial_prompt(self.task.answer_format, self.items[q].text)) for q in chunk]
            seeds = [self._seed("trial", q, 1, 0) for q in chunk]
            outs = self.backend.generate(sent, with_stop(self.spec.trial, TRIAL_STOP), seeds, self.adapter)
            rows = []
            for q, p, s, o in zip(chunk, sent, seeds, outs):
                v = self.task.score(self.items[q], o.text)
                rows.append(self._attempt_row(q, 1, 0, p, s, self.spec.trial, o.text, o.tokens_in, o.tokens_out, v))
            self.store.insert_attempts(rows)

    # -- reflections -------------------------------------------------------------------------
    def _failed_targets(self, rnd: int) -> list[tuple[_Failed, int]]:
        """(failed attempt, branch) pairs to reflect on in round `rnd`."""
        out: list[tuple[_Failed, int]] = []
        if rnd == 1:
            if self.spec.fixed_trial1 is not None:
                for qid, aid in self.spec.fixed_trial1.items():
                    a = self.store.attempt(aid)
                    if a is not None and not a.correct and qid in self.items:
                        out += [(_Failed(aid, qid, a.output, a.feedback or ""), b) for b in range(self.spec.k)]
                return out
            for (qid, trial, _b), a in self._attempts().items():
                if trial == 1 and not a.correct:  # type: ignore[attr-defined]
                    out += [(_Failed(a.id, qid, a.output, a.feedback or ""), b)  # type: ignore[attr-defined]
                            for b in range(self.spec.k)]
            return out
        for (qid, trial, b), a in self._attempts().items():
            if trial == rnd and not a.correct:  # type: ignore[attr-defined]
                out.append((_Failed(a.id, qid, a.output, a.feedback or ""), b))  # type: ignore[attr-defined]
        return out

    def _reflect_text(self, f: _Failed, instruction: Instruction) -> str:
        item = self.items[f.question_id]
        return prompts.reflect_prompt(self.task.answer_format, item.text, f.output, f.feedback, instruction.text)

    def reflect(self, rnd: int) -> None:
        have = {(r.attempt_id, r.branch) for r in self.store.reflections(self.gen, self.spec.purpose)}
        todo = [(f, b) for f, b in self._failed_targets(rnd) if (f.attempt_id, b) not in have]
        todo.sort(key=lambda t: (t[0].question_id, t[1]))
        for chunk in self._chunks(todo, f"reflect r{rnd}"):
            instrs = [self.spec.pick(self._qkey(f.question_id), rnd, b) for f, b in chunk]
            sent = [self.backend.render(self._reflect_text(f, ins)) for (f, _b), ins in zip(chunk, instrs)]
            seeds = [self._seed("reflect", f.question_id, rnd, b) for f, b in chunk]
            outs = self.backend.generate(sent, with_stop(self.spec.reflect, REFLECTION_STOP), seeds, self.adapter)
            rows = [dict(generation_id=self.gen, purpose=self.spec.purpose, attempt_id=f.attempt_id, branch=b,
                         instruction_id=ins.id, model_ref=self.model_ref, sampling=_sampling_json(self.spec.reflect),
                         seed=s, prompt=p, text=o.text, tokens_out=o.tokens_out)
                    for (f, b), ins, p, s, o in zip(chunk, instrs, sent, seeds, outs)]
            self.store.insert_reflections(rows)

    # -- retries -----------------------------------------------------------------------------
    def retry(self, rnd: int) -> None:
        by_id = {}
        pending = [r for r in self.store.reflections(self.gen, self.spec.purpose) if r.next_attempt_id is None]
        if not pending:
            return
        src = {a.id: a for a in self.store.attempts(self.gen, self.spec.purpose)}
        have = self._attempts()
        todo = []
        for r in pending:
            a = src.get(r.attempt_id) or self.store.attempt(r.attempt_id)
            if a is None or (a.trial != rnd):
                continue
            by_id[r.id] = a
            todo.append(r)
        todo.sort(key=lambda r: (r.attempt_id, r.branch))
        for chunk in self._chunks(todo, f"retry r{rnd}"):
            links: list[tuple[int, int, bool]] = []
            rows = []
            need = [r for r in chunk if (by_id[r.id].question_id, rnd + 1, r.branch) not in have]
            if need:
                sent = []
                for r in need:
                    a = by_id[r.id]
                    ins = self.spec.instructions.get(r.instruction_id) or self.spec.pick(
                        self._qkey(a.question_id), rnd, r.branch)
                    raw = self._reflect_text(_Failed(a.id, a.question_id, a.output, a.feedback or ""), ins)
                    sent.append(self.backend.render(prompts.retry_prompt(raw, r.text)))
                seeds = [self._seed("trial", by_id[r.id].question_id, rnd + 1, r.branch) for r in need]
                outs = self.backend.generate(sent, with_stop(self.spec.trial, TRIAL_STOP), seeds, self.adapter)
                for r, p, s, o in zip(need, sent, seeds, outs):
                    qid = by_id[r.id].question_id
                    v = self.task.score(self.items[qid], o.text)
                    rows.append(self._attempt_row(qid, rnd + 1, r.branch, p, s, self.spec.trial, o.text, o.tokens_in,
                                                  o.tokens_out, v))
                self.store.insert_attempts(rows)
                have.update(self.store.attempt_keys(self.gen, self.spec.purpose, rnd + 1,
                                                    sorted({by_id[r.id].question_id for r in need})))
            for r in chunk:
                a = have.get((by_id[r.id].question_id, rnd + 1, r.branch))
                if a is not None:
                    links.append((r.id, a.id, bool(a.correct)))  # type: ignore[attr-defined]
            self.store.link_reflections(links)
