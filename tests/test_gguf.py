"""GGUF base models: dequantized once into a verified, hash-named folder under the state dir; bad files are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evolver.config.schema import ModelConfig
from evolver.gguf_base import MARKER, GGUFError, dequantized_dir
from evolver.models import resolve_base


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from evolver.testing.tiny_gguf import build_tiny_gguf

    work = tmp_path_factory.mktemp("gguf")
    return build_tiny_gguf(work / "weights" / "tiny.Q8_0.gguf", work)


def test_dequantized_once_into_a_verified_folder(tiny_gguf: tuple[Path, Path], tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf, source = tiny_gguf
    state = tmp_path / "state"
    folder = dequantized_dir(gguf, state)
    assert folder.parent == state / "models" and folder.name.startswith("tiny.Q8_0-")
    marker = json.loads((folder / MARKER).read_text())
    assert marker["gguf"] == str(gguf) and set(marker["files"]) >= {"config.json", "model.safetensors"}
    got = AutoModelForCausalLM.from_pretrained(str(folder)).state_dict()
    want = AutoModelForCausalLM.from_pretrained(str(source)).state_dict()
    assert set(got) == set(want)
    assert all(torch.allclose(got[k], want[k], atol=2e-3) for k in want)  # Q8_0 rounding only
    tok = AutoTokenizer.from_pretrained(str(folder))
    text = "Question: 12 + 34 Solution: Finish[46]"
    assert tok(text).input_ids == AutoTokenizer.from_pretrained(str(source))(text).input_ids
    assert "<|assistant|>" in tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                                      add_generation_prompt=True)
    weights = folder / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert dequantized_dir(gguf, state) == folder and weights.stat().st_mtime_ns == before  # reused, not rebuilt
    weights.write_bytes(b"damaged")
    assert dequantized_dir(gguf, state) == folder and weights.stat().st_size > 1000  # verified: rebuilt


def test_resolve_base_names_the_file_or_a_folder_plus_gguf_file(tiny_gguf: tuple[Path, Path], tmp_path: Path) -> None:
    gguf, _ = tiny_gguf
    state = tmp_path / "state"
    direct = resolve_base(ModelConfig(base=str(gguf)), tmp_path, state)
    in_folder = resolve_base(ModelConfig(base=str(gguf.parent), gguf_file=gguf.name), tmp_path, state)
    assert direct == in_folder and Path(direct).parent == state / "models"


@pytest.mark.parametrize("content, message", [
    (None, "GGUF file not found"),
    (b"PK\x03\x04 a zip file", "not a GGUF file"),
    (b"GGUF\x03\x00\x00\x00garbage", "corrupt GGUF file"),
])
def test_bad_gguf_is_one_line_naming_the_file(tmp_path: Path, content: bytes | None, message: str) -> None:
    bad = tmp_path / "bad.gguf"
    if content is not None:
        bad.write_bytes(content)
    with pytest.raises(GGUFError) as err:
        dequantized_dir(bad, tmp_path / "state")
    assert str(err.value).startswith(f"{bad}: {message}") and "\n" not in str(err.value)
    assert err.value.exit_code == 2


@pytest.mark.parametrize("content, message", [(None, "GGUF file not found"), (b"GGUF\x03\x00", "corrupt GGUF file")])
def test_config_check_refuses_a_bad_gguf(cli, tmp_path: Path, content: bytes | None, message: str) -> None:  # noqa: ANN001
    bad = tmp_path / "models" / "m.gguf"
    bad.parent.mkdir()
    if content is not None:
        bad.write_bytes(content)
    cfg = tmp_path / "evolver.toml"
    cfg.write_text('[model]\nbase = "models"\ngguf_file = "m.gguf"\n')
    result = cli("--config", cfg, "config", "check")
    lines = [ln for ln in result.stderr.splitlines() if "model." in ln]
    assert result.exit_code == 2 and len(lines) == 1
    assert "model.gguf_file" in lines[0] and message in lines[0] and str(bad) in lines[0]
