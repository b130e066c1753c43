"""Training stages on a tiny local model: real child processes, real trl, real adapters.

One module fixture trains gen 1 (SFT then DPO) and gen 2 (SFT continuing from gen 1) once,
through the cycle's `run_stage` (which records the phase rows, as the daemon does); the tests
read what those runs left in the store and on disk. Failure paths (crash, kill, corrupt
adapter, too little data) cost no training.
"""

from __future__ import annotations

import io
import json
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from evolver.artifacts import AdapterError, atomic_dir, hash_adapter, verify_adapter
from evolver.backends.holder import BackendHolder
from evolver.config import load_config
from evolver.config.schema import DPOConfig, LoraConfig, ModelConfig, SFTConfig
from evolver.context import StageContext, Stopped
from evolver.daemon.cycle import GenerationFailed, run_stage
from evolver.reflection import prompts
from evolver.states import Stage
from evolver.store import Store
from evolver.training import data as tdata
from evolver.training.adapters import load_adapter, tensors_sha256
from evolver.training.child import CRASH_ENV
from evolver.training.device import plan_device
from evolver.training.launch import child_command
from evolver.training.errors import TrainingError
from evolver.training.spec import AdapterRef, Schedule, TrainSpec

FMT = "Answer with Finish[number]."

CONFIG = """
[model]
base = "{base}"
[training]
lineage = "{lineage}"
data_window = {window}
[training.lora]
r = 4
alpha = 8
[training.sft]
epochs = 1
batch_size = 4
learning_rate = 0.01
max_length = 128
min_samples = 8
[training.dpo]
batch_size = 4
learning_rate = 0.01
max_length = 128
min_pairs = 8
"""


def dplus_rows(n: int, offset: int = 0) -> list[dict[str, Any]]:
    rows = []
    for i in range(offset, offset + n):
        q = f"{i} + {i + 3}"
        rp = prompts.reflect_prompt(FMT, q, f"{q} = 7 Finish[7]", "", "Look for calculation errors.")
        refl = f"The failed solution added wrong: {q} = {2 * i + 3}."
        t2 = f"{q} = {2 * i + 3} Finish[{2 * i + 3}]"
        rows.append({"question_id": i, "attempt_id": i, "reflection_id": i, "next_attempt_id": 1000 + i,
                     "instruction_id": "1-1-1", "question": q, "trial1": f"{q} = 7 Finish[7]", "reflect_prompt": rp,
                     "reflection": refl, "retry_prompt": prompts.retry_prompt(rp, refl), "trial2": t2})
    return rows


def pair_rows(n: int) -> list[dict[str, Any]]:
    return [{"question_id": r["question_id"], "prompt": r["reflect_prompt"], "chosen": r["reflection"],
             "rejected": "The solution is correct.", "chosen_id": r["reflection_id"], "rejected_id": 5000 + i}
            for i, r in enumerate(dplus_rows(n))]


def make_world(root: Path, base: Path, lineage: str = "continue", window: int = 1):  # noqa: ANN201
    root.mkdir(parents=True, exist_ok=True)
    (root / "evolver.toml").write_text(CONFIG.format(base=base, lineage=lineage, window=window))
    cfg = load_config(root / "evolver.toml")
    store = Store.open(cfg.state_dir / "evolver.db")
    store.create_generation(0, None, str(base), cfg.hash, "{}", status="base")
    return cfg, store


def ctx_for(cfg, store: Store, gen: int, parent: int | None, **kw: Any) -> StageContext:  # noqa: ANN001
    if store.generation(gen) is None:
        store.create_generation(gen, parent, "base", cfg.hash, "{}")
    return StageContext(cfg, store, gen, parent, BackendHolder(cfg), **kw)


def _stage(ctx: StageContext, stage: Stage) -> dict[str, Any]:
    """One training stage as the daemon runs it (phase row recorded, no retry); its detail and status."""
    try:
        result = run_stage(ctx, stage, retries=0, backoff=0.0)
    except GenerationFailed as err:
        raise err.__cause__ from None  # the stage's own error, as a caller of the stage sees it
    return {"status": "skipped" if result.skipped else "done", **result.detail}


def run_sft(ctx: StageContext) -> dict[str, Any]:
    return _stage(ctx, Stage.SFT)


def run_dpo(ctx: StageContext) -> dict[str, Any]:
    return _stage(ctx, Stage.DPO)


class ChildPeaks:
    """Outside measurement: the resident memory of this process's training children, sampled from here
    every 20 ms (after exec only: the command line names the child), the highest per spec file."""

    def __init__(self) -> None:
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> ChildPeaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.02):
            for proc in me.children(recursive=True):
                try:
                    cmd = proc.cmdline()
                    if "evolver.training.child" not in cmd:
                        continue
                    rss = proc.memory_info().rss / 2**20
                except psutil.Error:
                    continue
                self.peaks[cmd[-1]] = max(self.peaks.get(cmd[-1], 0.0), rss)


BALLAST_MB = 1024


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """gen 1: SFT + DPO from base; gen 2: SFT continuing from gen 1's adapter.

    Meanwhile this process holds BALLAST_MB more, as a long-running daemon holds its memory, and
    samples its training children's resident memory from outside (`sampled_peaks`).
    """
    import psutil

    from evolver.testing.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("train")
    base = build_tiny_model(root / "tiny", arch="llama")
    cfg, store = make_world(root / "w", base)
    ballast = b"\x01" * (BALLAST_MB * 2**20)
    parent_rss_mb = psutil.Process().memory_info().rss / 2**20
    sampler = ChildPeaks().__enter__()
    seen: list[tuple[str, int, int]] = []
    ctx1 = ctx_for(cfg, store, 1, 0, progress=lambda label, done, total, **kw: seen.append((label, done, total)))
    store.put_dataset(1, "D+", "harvest", dplus_rows(16))
    store.put_dataset(1, "D±", "harvest", pair_rows(16))
    sft1 = run_sft(ctx1)
    gen1_after_sft = store.generation(1)
    dpo1 = run_dpo(ctx1)
    ctx2 = ctx_for(cfg, store, 2, 1)
    store.put_dataset(2, "D+", "harvest", dplus_rows(12, offset=40))
    sft2 = run_sft(ctx2)
    sampler.__exit__()
    del ballast
    return {"cfg": cfg, "store": store, "base": base, "sft1": sft1, "dpo1": dpo1, "sft2": sft2,
            "gen1_after_sft": gen1_after_sft, "progress": seen, "sampled_peaks": sampler.peaks,
            "parent_rss_mb": parent_rss_mb}


# -- data ------------------------------------------------------------------------------------

def test_completions_match_what_inference_sees() -> None:
    row = dplus_rows(1)[0]
    full = row["reflect_prompt"] + prompts.one_stage_completion(row["reflection"], row["trial2"])
    stage1 = tdata.reflection_completion(row["reflect_prompt"], row["reflection"])
    stage2 = tdata.trial2_completion(row["reflection"], row["trial2"])
    assert row["reflect_prompt"] + stage1 + prompts.SOLUTION_CUE == row["retry_prompt"]
    assert row["retry_prompt"] + stage2 == full


def test_two_stage_mixes_both_stages_and_window_reaches_ancestors(tmp_path: Path, tiny_model_dir: Path) -> None:
    cfg, store = make_world(tmp_path / "w", tiny_model_dir, window=2)
    for g in (1, 2, 3):
        store.create_generation(g, g - 1, "base", cfg.hash, "{}")
        store.put_dataset(g, "D+", "harvest", dplus_rows(3, offset=10 * g))
    store.put_dataset(3, "T1", "harvest", [{"question_id": 1, "attempt_id": 1, "prompt": "P", "completion": " C"}])
    assert tdata.window(store, 3, 2) == [3, 2]
    two = cfg.config.training.sft.model_copy(update={"mode": "two_stage", "data": ["D+", "T1"]})
    ts = tdata.sft_set(store, [3, 2], two)
    assert ts.counts == {"D+": 6, "T1": 1} and len(ts.examples) == 13
    assert [s["generation"] for s in ts.sources if s["kind"] == "D+"] == [3, 2]
    first = dplus_rows(3, offset=30)[0]
    assert ts.examples[1] == {"prompt": first["retry_prompt"],
                              "completion": tdata.trial2_completion(first["reflection"], first["trial2"])}
    # plain rejection sampling: the trial-1-correct answers alone, no reflection and no retry
    rft = cfg.config.training.sft.model_copy(update={"mode": "answers", "data": ["T1"]})
    ts = tdata.sft_set(store, [3, 2], rft)
    assert ts.counts == {"T1": 1} and ts.examples == [{"prompt": "P", "completion": " C"}]


def test_completion_only_labels(tiny_model_dir: Path, tmp_path: Path) -> None:
    """trl's prompt-completion path: prompt tokens carry label -100, completion tokens + EOS carry themselves."""
    from evolver.training.runtime import load_policy
    from evolver.training.sft import build_sft_trainer

    spec = TrainSpec(phase="sft", generation=1, base=str(tiny_model_dir), model=ModelConfig(device="cpu"), data="",
                     out_dir=str(tmp_path / "a"), result=str(tmp_path / "r.json"),
                     lora=LoraConfig(r=4, alpha=8, dropout=0.0), sft=SFTConfig(batch_size=2),
                     schedule=Schedule(epochs=1, learning_rate=1e-3), seed=0)
    policy = load_policy(spec)
    row = dplus_rows(1)[0]
    ex = {"prompt": row["reflect_prompt"], "completion": prompts.one_stage_completion(row["reflection"], row["trial2"])}
    trainer = build_sft_trainer(policy, [ex], spec, tmp_path / "work")
    item = trainer.train_dataset[0]
    tok = policy.tokenizer
    n_prompt = len(tok(ex["prompt"]).input_ids)
    assert item["labels"][:n_prompt] == [-100] * n_prompt
    assert item["labels"][n_prompt:] == item["input_ids"][n_prompt:]
    assert item["input_ids"][-1] == tok.eos_token_id
    assert tok.decode(item["input_ids"][n_prompt:-1]) == ex["completion"]
    batch = trainer.data_collator([item])
    assert batch["labels"][0].tolist() == item["labels"]


def test_chat_prompts_keep_a_single_bos(tmp_path: Path) -> None:
    from tokenizers.processors import TemplateProcessing

    from evolver.testing.tiny import build_tokenizer
    from evolver.training.runtime import normalize_prompts

    tok = build_tokenizer(tmp_path / "tok", chat=True)
    tok._tokenizer.post_processor = TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", tok.bos_token_id)])
    sent = "<bos><|user|>2+2?<|end|><|assistant|>"
    [ex] = normalize_prompts([{"prompt": sent, "completion": " 4"}], tok)
    assert tok(ex["prompt"]).input_ids == tok(sent, add_special_tokens=False).input_ids  # as the backend sent it


# -- training runs ----------------------------------------------------------------------------

def test_sft_then_dpo_store_two_hashed_adapters(trained: dict[str, Any]) -> None:
    store: Store = trained["store"]
    sft, dpo = trained["sft1"], trained["dpo1"]
    assert sft["status"] == dpo["status"] == "done"
    state = trained["cfg"].state_dir
    assert Path(sft["adapter_path"]) == (state / "adapters/gen-0001/sft").resolve()
    assert Path(dpo["adapter_path"]) == (state / "adapters/gen-0001/dpo").resolve()
    assert sft["adapter_sha256"] != dpo["adapter_sha256"]
    for r in (sft, dpo):
        assert hash_adapter(r["adapter_path"]) == r["adapter_sha256"]
        cfg = json.loads((Path(r["adapter_path"]) / "adapter_config.json").read_text())
        assert cfg["base_model_name_or_path"] == str(trained["base"].resolve())
    # the generation points at the last adapter; the SFT hash stays in the sft phase detail
    assert trained["gen1_after_sft"].adapter_sha256 == sft["adapter_sha256"]
    gen = store.generation(1)
    assert (gen.adapter_path, gen.adapter_sha256) == (dpo["adapter_path"], dpo["adapter_sha256"])
    phases = {p.name: p for p in store.phases(1)}
    assert phases["sft"].status == phases["dpo"].status == "done"
    assert json.loads(phases["sft"].detail)["adapter_sha256"] == sft["adapter_sha256"]
    assert json.loads(phases["dpo"].detail)["init_adapter_sha256"] == sft["adapter_sha256"]
    # metrics: one train-log row per optimizer step, progress reported to the context
    for phase, r in (("sft", sft), ("dpo", dpo)):
        logs = store.train_logs(1, phase)
        assert r["steps"] == 4 and [x["step"] for x in logs] == [1, 2, 3, 4]
        assert all(x["loss"] is not None for x in logs)
        assert r["seconds"] > 0 and r["peak_rss_mb"] > 50
    assert ("sft", 4, 4) in trained["progress"] and ("dpo", 4, 4) in trained["progress"]
    assert dpo["reference"] == "sft"


def test_each_child_reports_its_own_peak_memory(trained: dict[str, Any]) -> None:
    """The child's VmHWM, not the daemon's memory carried over by ru_maxrss: below what the parent
    holds, different for SFT and DPO, within 10 % of the peak sampled from outside; `show` has it."""
    from evolver.store.detail import load_detail
    from evolver.views.generation import generation_view

    state = trained["cfg"].state_dir
    sampled = trained["sampled_peaks"]
    for gen, phase in ((1, "sft"), (1, "dpo"), (2, "sft")):
        reported = trained[f"{phase}{gen}"]["peak_rss_mb"]
        outside = sampled[str(state / "train" / f"gen-{gen:04d}" / phase / "spec.json")]
        assert abs(reported - outside) <= 0.10 * outside, (gen, phase, reported, outside)
        assert reported < trained["parent_rss_mb"] - BALLAST_MB / 2, (reported, trained["parent_rss_mb"])
        assert trained[f"{phase}{gen}"]["world_size"] == 1
        print(f"gen {gen} {phase}: child peak RSS {reported} MB, sampled from outside {outside:.1f} MB")
    assert trained["sft1"]["peak_rss_mb"] != trained["dpo1"]["peak_rss_mb"]
    buf = io.StringIO()
    Console(file=buf, width=200, color_system=None).print(generation_view(load_detail(trained["store"], 1)))
    shown = buf.getvalue()
    for phase in ("sft", "dpo"):
        assert f"peak RSS {trained[f'{phase}1']['peak_rss_mb']:,.0f} MB" in shown


TWO_RANK_LOSS_TOL = 0.05  # max |loss(2 ranks) - loss(1 process)| per logged step, relative to the loss


def test_two_cpu_ranks_train_like_one_process(trained: dict[str, Any], tmp_path: Path) -> None:
    """gen 1's SFT and DPO again under `accelerate launch --num_processes 2 --cpu`: two ranks (DDP over
    gloo, each half of the global batch) follow the single process's loss curve; the adapter generates."""
    from evolver.backends.base import Adapter, Sampling
    from evolver.backends.transformers_backend import TransformersBackend
    from evolver.training.launch import run_child

    state, store = trained["cfg"].state_dir, trained["store"]
    adapters = {}
    for phase in ("sft", "dpo"):
        work = tmp_path / phase
        work.mkdir()
        spec = TrainSpec.load(state / "train" / "gen-0001" / phase / "spec.json")
        spec = spec.model_copy(update={"out_dir": str(tmp_path / f"{phase}-adapter"), "result": str(work / "result.json")})
        spec.dump(work / "spec.json")
        cmd = child_command(work / "spec.json", "accelerate", ["--num_processes", "2", "--cpu"])
        outcome = run_child(cmd, work / "child.log", lambda *a: None)
        assert outcome.returncode == 0, (work / "child.log").read_text()[-12000:]  # every rank's own lines, not only torchrun's
        result = json.loads((work / "result.json").read_text())
        assert result["world_size"] == 2 and len(result["peak_rss_mb_ranks"]) == 2  # gathered over the process group
        single = [r["loss"] for r in store.train_logs(1, phase)]
        ranks = [r["loss"] for r in result["loss_curve"]]
        assert len(ranks) == len(single) == result["steps"]
        worst = max(abs(a - b) / b for a, b in zip(ranks, single))
        print(f"{phase}: 1 process {[round(x, 4) for x in single]}, 2 ranks {[round(x, 4) for x in ranks]}, "
              f"worst relative difference {worst:.4f}")
        assert worst <= TWO_RANK_LOSS_TOL, (single, ranks)
        adapters[phase] = Adapter(f"gen-0001-{phase}-2ranks", Path(result["adapter_path"]), 1, result["adapter_sha256"])
    backend = TransformersBackend(str(trained["base"]), ModelConfig(device="cpu"))
    outs = backend.generate([r["reflect_prompt"] for r in dplus_rows(2)], Sampling(max_new_tokens=8), [1, 2],
                            adapter=adapters["dpo"])
    assert all(o.tokens_out > 0 for o in outs)


def test_every_trainable_parameter_changed(trained: dict[str, Any]) -> None:
    """SFT moved every LoRA tensor from its (seeded) initial value; DPO moved every tensor of the SFT adapter."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    from evolver.training.runtime import load_policy

    sft, dpo = trained["sft1"], trained["dpo1"]
    spec = TrainSpec.load(trained["cfg"].state_dir / "train/gen-0001/sft/spec.json")
    init = get_peft_model_state_dict(load_policy(spec).model)
    assert tensors_sha256(init) == sft["init_state_sha256"]  # the run started from exactly this
    after_sft = load_file(Path(sft["adapter_path"]) / "adapter_model.safetensors")
    after_dpo = load_file(Path(dpo["adapter_path"]) / "adapter_model.safetensors")
    assert set(init) == set(after_sft) == set(after_dpo)
    assert sum(t.numel() for t in after_sft.values()) == sft["trainable_params"]
    unchanged = [k for k in init if (init[k] == after_sft[k]).all()]
    assert not unchanged, f"SFT left {unchanged} untouched"
    unchanged = [k for k in after_sft if (after_sft[k] == after_dpo[k]).all()]
    assert not unchanged, f"DPO left {unchanged} untouched"


def test_second_generation_continues_from_the_first(trained: dict[str, Any]) -> None:
    from safetensors.torch import load_file

    dpo1, sft2 = trained["dpo1"], trained["sft2"]
    assert sft2["status"] == "done" and sft2["init"] == "adapter"
    assert (sft2["init_adapter"], sft2["init_adapter_sha256"]) == (dpo1["adapter_path"], dpo1["adapter_sha256"])
    gen1 = load_file(Path(dpo1["adapter_path"]) / "adapter_model.safetensors")
    assert sft2["init_state_sha256"] == tensors_sha256(gen1)  # its starting weights are gen 1's adapter
    gen2 = load_file(Path(sft2["adapter_path"]) / "adapter_model.safetensors")
    assert all(not (gen1[k] == gen2[k]).all() for k in gen1)
    assert sft2["n_dplus"] == 12 and [s["generation"] for s in sft2["sources"]] == [2]


def test_done_phase_is_not_retrained(trained: dict[str, Any]) -> None:
    """The cycle skips finished phases: resuming generation 1 trains nothing again."""
    from evolver.daemon.cycle import run_generation

    store: Store = trained["store"]
    result_file = trained["cfg"].state_dir / "train/gen-0001/sft/result.json"
    mtime = result_file.stat().st_mtime_ns
    attempts = store.phase(1, "sft").attempts
    for name in ("generate", "harvest"):  # the fixture trained from stored snapshots: mark the rest done
        store.phase_start(1, name)
        store.phase_finish(1, name, "done", detail={})
    store.phase_start(1, "evaluate")  # and stop the resumed generation right after training
    ctx = StageContext(trained["cfg"], store, 1, 0, BackendHolder(trained["cfg"]))
    ctx.stop.set()
    with pytest.raises(Stopped):
        run_generation(ctx)
    assert result_file.stat().st_mtime_ns == mtime and store.phase(1, "sft").attempts == attempts
    assert store.generation(1).adapter_sha256 == trained["dpo1"]["adapter_sha256"]


def test_dpo_reference_choices(trained: dict[str, Any], tmp_path: Path) -> None:
    """ref=sft copies the start adapter, ref=parent loads the parent's, ref=base disables adapters."""
    from evolver.training.dpo import build_dpo_trainer
    from evolver.training.runtime import load_policy, read_jsonl

    spec = TrainSpec.load(trained["cfg"].state_dir / "train/gen-0001/dpo/spec.json")
    pairs = read_jsonl(spec.data)[:2]
    parent = trained["sft2"]
    logps = {}
    for ref in ("sft", "parent", "base"):
        ref_adapter = AdapterRef(path=parent["adapter_path"], sha256=parent["adapter_sha256"]) if ref == "parent" else None
        this = spec.model_copy(update={"ref": ref, "ref_adapter": ref_adapter})
        trainer, what = build_dpo_trainer(load_policy(this), pairs, this, tmp_path / ref)
        assert what == ref
        model = trainer.model
        assert model.active_adapter == "default"
        assert ("ref" in model.peft_config) == (ref != "base")
        assert all(not p.requires_grad for n, p in model.named_parameters() if ".ref." in n)
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
        chosen, _rejected = trainer.compute_ref_log_probs(model, batch)
        logps[ref] = chosen.tolist()
    assert len({tuple(v) for v in logps.values()}) == 3


def test_report_to_tensorboard_writes_event_files(trained: dict[str, Any], tmp_path: Path) -> None:
    """training.report_to = ["tensorboard"] reaches the child through its spec: event files with the loss
    appear under RUNS/gen-NNNN-<phase>, offline; the default (none) writes no tracker files at all."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from evolver.training.child import run

    spec = TrainSpec.load(trained["cfg"].state_dir / "train/gen-0001/sft/spec.json")
    assert spec.report_to == [] and not (trained["cfg"].state_dir / "runs").exists()
    runs = tmp_path / "runs"
    this = spec.model_copy(update={"report_to": ["tensorboard"], "runs_dir": str(runs), "out_dir": str(tmp_path / "a"),
                                   "result": str(tmp_path / "w" / "result.json"),
                                   "schedule": Schedule(epochs=1, max_steps=2, learning_rate=1e-3)})
    run(this)
    events = list((runs / "gen-0001-sft").glob("events.out.tfevents.*"))
    assert events, sorted(runs.rglob("*"))
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert "train/loss" in acc.Tags()["scalars"]
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2]


def test_dpo_sft_weight_adds_the_chosen_nll(trained: dict[str, Any], tmp_path: Path) -> None:
    """sft_weight > 0 adds the chosen reflection's NLL to the DPO loss (RPO); 0 is plain DPO."""
    import torch

    from evolver.training.dpo import build_dpo_trainer
    from evolver.training.runtime import load_policy, read_jsonl

    spec = TrainSpec.load(trained["cfg"].state_dir / "train/gen-0001/dpo/spec.json")
    pairs = read_jsonl(spec.data)[:2]
    loss = {}
    for w in (0.0, 1.0):
        this = spec.model_copy(update={"dpo": spec.dpo.model_copy(update={"sft_weight": w})})
        trainer, _ = build_dpo_trainer(load_policy(this), pairs, this, tmp_path / str(w))
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
        with torch.no_grad():
            loss[w] = float(trainer.compute_loss(trainer.model, batch))
    assert loss[1.0] - loss[0.0] > 0.1  # a per-token NLL of an unlikely-ish text, not a rounding difference


# -- refusals and failures ------------------------------------------------------------------

def test_corrupt_adapter_is_refused(trained: dict[str, Any], tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    good = Path(trained["sft1"]["adapter_path"])
    sha = trained["sft1"]["adapter_sha256"]
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    blob = bytearray((bad / "adapter_model.safetensors").read_bytes())
    blob[-5] ^= 0xFF
    (bad / "adapter_model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(AdapterError, match="corrupt"):
        verify_adapter(bad, sha)
    with pytest.raises(AdapterError, match="not found"):
        verify_adapter(tmp_path / "missing", sha)
    (bad / "adapter_config.json").unlink()
    with pytest.raises(AdapterError, match="incomplete"):
        load_adapter(AutoModelForCausalLM.from_pretrained(trained["base"]), bad, sha)
    assert verify_adapter(good, sha) == good

    # a generation whose parent's adapter is corrupt fails its sft phase and leaves the parent alone
    cfg, store = make_world(tmp_path / "w", trained["base"])
    parent_dir = tmp_path / "parent-adapter"
    shutil.copytree(good, parent_dir)
    store.create_generation(1, 0, "base", cfg.hash, "{}", status="promoted", adapter_path=str(parent_dir),
                            adapter_sha256=sha)
    (parent_dir / "adapter_model.safetensors").write_bytes(bytes(blob))
    ctx = ctx_for(cfg, store, 2, 1)
    store.put_dataset(2, "D+", "harvest", dplus_rows(10))
    with pytest.raises(AdapterError, match="parent gen-0001 adapter refused"):
        run_sft(ctx)
    ph = store.phase(2, "sft")
    assert ph.status == "failed" and "corrupt" in ph.error
    assert store.generation(2).adapter_path is None
    assert store.generation(1).status == "promoted" and store.generation(1).adapter_sha256 == sha


@pytest.mark.parametrize("mode, expect", [("sft", "InjectedCrash: injected crash in gen-0001 sft"),
                                          ("sft:kill", "killed by signal 9")])
def test_child_crash_marks_phase_failed(mode: str, expect: str, tmp_path: Path, tiny_model_dir: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, store = make_world(tmp_path / "w", tiny_model_dir)
    ctx = ctx_for(cfg, store, 1, 0)
    store.put_dataset(1, "D+", "harvest", dplus_rows(8))
    monkeypatch.setenv(CRASH_ENV, mode)
    with pytest.raises(TrainingError, match=expect):
        run_sft(ctx)
    ph = store.phase(1, "sft")
    assert ph.status == "failed" and expect in ph.error and ph.attempts == 1
    assert store.generation(1).adapter_path is None
    assert not (cfg.state_dir / "adapters/gen-0001/sft").exists()
    assert (cfg.state_dir / "train/gen-0001/sft/child.log").is_file()


def test_too_little_data_skips_and_inherits(trained: dict[str, Any], tmp_path: Path) -> None:
    cfg, store = make_world(tmp_path / "w", trained["base"])
    parent = trained["dpo1"]
    store.create_generation(1, 0, "base", cfg.hash, "{}", status="promoted", adapter_path=parent["adapter_path"],
                            adapter_sha256=parent["adapter_sha256"])
    ctx = ctx_for(cfg, store, 2, 1)
    store.put_dataset(2, "D+", "harvest", dplus_rows(3))
    store.put_dataset(2, "D±", "harvest", pair_rows(2))
    sft = run_sft(ctx)
    assert sft["status"] == "skipped" and "3 training rows (D+ 3" in sft["reason"] and sft["inherited_from"] == 1
    gen = store.generation(2)
    assert gen.adapter_sha256 == parent["adapter_sha256"]
    assert Path(gen.adapter_path) == (cfg.state_dir / "adapters/gen-0002/inherited").resolve()  # its own copy
    dpo = run_dpo(ctx)
    assert dpo["status"] == "skipped" and "2 pairs" in dpo["reason"]
    assert store.phase(2, "dpo").status == "skipped"
    assert store.generation(2).adapter_sha256 == parent["adapter_sha256"]

    # restart lineage: nothing to inherit, the generation serves the base model
    cfg_r, store_r = make_world(tmp_path / "r", trained["base"], lineage="restart")
    store_r.create_generation(1, 0, "base", cfg_r.hash, "{}", adapter_path=parent["adapter_path"],
                              adapter_sha256=parent["adapter_sha256"])
    ctx_r = ctx_for(cfg_r, store_r, 2, 1)
    assert run_sft(ctx_r)["adapter_path"] is None and store_r.generation(2).adapter_path is None


def test_dpo_needs_sft_first_and_stop_is_honoured(tmp_path: Path, tiny_model_dir: Path) -> None:
    cfg, store = make_world(tmp_path / "w", tiny_model_dir)
    ctx = ctx_for(cfg, store, 1, 0, stop=threading.Event())
    with pytest.raises(TrainingError, match="sft phase is not started"):
        run_dpo(ctx)
    assert store.phase(1, "dpo").status == "failed"  # recorded, so a retry loop counts it
    ctx.stop.set()
    with pytest.raises(Stopped):
        run_sft(ctx)
    assert store.phase(1, "sft") is None  # stopped before the phase was marked running


# -- pure parts ------------------------------------------------------------------------------

def test_child_command_construction(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    assert child_command(spec, python="py") == ["py", "-m", "evolver.training.child", str(spec)]
    assert child_command(spec, "accelerate", ["--num_processes", "4", "--mixed_precision", "bf16"], python="py") == [
        "py", "-m", "evolver.training.ranks", "--num_processes", "4", "--mixed_precision", "bf16",
        "-m", "evolver.training.child", str(spec)]


def test_cpu_ranks_go_to_torchrun_and_the_global_batch_is_kept() -> None:
    from accelerate.commands.launch import launch_command_parser

    from evolver.training.ranks import is_cpu_ranks, torchrun_args
    from evolver.training.runtime import per_rank_batch

    def parse(*flags: str):  # noqa: ANN202
        return launch_command_parser().parse_args([*flags, "-m", "evolver.training.child", "spec.json"])

    assert not is_cpu_ranks(parse("--num_processes", "2"))  # GPUs: accelerate's own launcher
    assert not is_cpu_ranks(parse("--cpu"))  # one process: accelerate's simple launcher is right
    one = parse("--num_processes", "2", "--cpu")
    one.num_machines = 1  # as accelerate's validation fills it in
    assert is_cpu_ranks(one)
    assert torchrun_args(one) == ["--nproc_per_node", "2", "--nnodes", "1", "--standalone", "--module",
                                  "evolver.training.child", "spec.json"]
    two = parse("--num_processes", "8", "--cpu", "--num_machines", "2", "--machine_rank", "1",
                "--main_process_ip", "10.0.0.1", "--main_process_port", "29400")
    assert torchrun_args(two)[:10] == ["--nproc_per_node", "4", "--nnodes", "2", "--node_rank", "1",
                                       "--master_addr", "10.0.0.1", "--master_port", "29400"]
    assert per_rank_batch(4, 1, 2) == (2, 1) and per_rank_batch(3, 4, 2) == (3, 2) and per_rank_batch(3, 1, 2) == (3, 1)


def test_device_plan() -> None:
    cpu = plan_device("cpu", "auto", 8_000_000_000)
    assert (cpu.bf16, cpu.use_cpu, cpu.gradient_checkpointing) == (False, True, False)
    small = plan_device("cuda", "auto", 500_000_000)
    assert (small.bf16, small.use_cpu, small.gradient_checkpointing) == (True, False, False)
    big = plan_device("cuda", "bfloat16", 8_000_000_000)
    assert (big.bf16, big.gradient_checkpointing) == (True, True)
    assert plan_device("cuda", "float16", 10).fp16 and not plan_device("cuda", "float32", 10).bf16
    tiny = plan_device("cuda", "auto", 930_000)  # the embedded world's model trains in fp32 on a GPU too
    assert (tiny.bf16, tiny.fp16) == (False, False)


def test_auto_dtype_follows_the_model_size(tiny_model_dir: Path) -> None:
    from evolver.models import FP32_MAX_PARAMS, count_params, resolve_dtype
    from evolver.paths import embedded_model_dir

    embedded = str(embedded_model_dir())
    assert 900_000 < (count_params(embedded) or 0) < 960_000  # 0.93 M, from the safetensors header alone
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    assert count_params(str(tiny_model_dir)) == sum(p.numel() for p in loaded.parameters())
    auto = ModelConfig()
    assert resolve_dtype(auto, "cpu", embedded) == "float32"
    assert resolve_dtype(auto, "cuda", embedded) == "float32"
    assert resolve_dtype(auto, "cuda", "Qwen/Qwen2.5-7B-Instruct") == "bfloat16"  # a hub id: size unknown
    assert resolve_dtype(ModelConfig(dtype="bfloat16"), "cuda", embedded) == "bfloat16"
    assert count_params("no/such/model") is None and FP32_MAX_PARAMS == 300_000_000


def test_atomic_dir_keeps_the_old_folder_on_failure(tmp_path: Path) -> None:
    final = tmp_path / "gen-0001" / "sft"
    with atomic_dir(final) as tmp:
        (tmp / "a.bin").write_bytes(b"one")
    before = hash_adapter(final)
    with pytest.raises(RuntimeError), atomic_dir(final) as tmp:
        (tmp / "a.bin").write_bytes(b"two")
        raise RuntimeError("crash mid-write")
    assert hash_adapter(final) == before and sorted(p.name for p in final.parent.iterdir()) == ["sft"]
    with atomic_dir(final) as tmp:
        (tmp / "a.bin").write_bytes(b"two")
    assert hash_adapter(final) != before


def test_the_child_receives_every_setting_typed(trained: dict[str, Any]) -> None:
    """The spec on disk round-trips to the config's own sections: each SFT/DPO setting with its type and value."""
    cfg = trained["cfg"].config
    for phase, section, cls in (("sft", cfg.training.sft, SFTConfig), ("dpo", cfg.training.dpo, DPOConfig)):
        spec = TrainSpec.load(trained["cfg"].state_dir / f"train/gen-0001/{phase}/spec.json")
        got = getattr(spec, phase)
        assert isinstance(got, cls) and got == section
        for name in cls.model_fields:
            assert type(getattr(got, name)) is type(getattr(section, name)), name
        assert spec.model == cfg.model and spec.lora == cfg.training.lora
        assert spec.schedule.learning_rate == section.learning_rate and spec.schedule.epochs == section.epochs
    raw = json.loads((trained["cfg"].state_dir / "train/gen-0001/dpo/spec.json").read_text())
    raw["dpo"]["bogus"] = 1
    with pytest.raises(ValueError, match="bogus"):
        TrainSpec.model_validate(raw)  # a setting the child does not know is refused, not dropped
