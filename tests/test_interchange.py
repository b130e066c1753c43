"""ReflectEvo interchange: the shared public samples import, and export → import preserves every field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evolver.cli.app import app
from evolver.reflection.interchange import export_snapshots, import_file
from evolver.store import Store

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "reflectevo"
SAMPLES = {"D+": "example_D+.jsonl", "D±": "example_D+-.jsonl", "Dpref": "example_Dpref.jsonl"}

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="shared ReflectEvo samples not present")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_shared_samples_round_trip(tmp_path: Path, kind: str) -> None:
    src = SHARED / SAMPLES[kind]
    store = Store.open(tmp_path / "e.db")
    rep = import_file(store, src)
    assert rep.kind == kind and rep.imported == len(_rows(src)) and not rep.problems
    again = import_file(store, src)
    assert again.dataset_id == rep.dataset_id  # same content: not stored twice
    out = export_snapshots(store, None, tmp_path / "out")
    assert _rows(out[kind]) == _rows(src)  # every field, every value, same order


def test_malformed_rows_abort_or_skip(tmp_path: Path) -> None:
    good = _rows(SHARED / SAMPLES["D+"])
    bad = tmp_path / "bad_D+.jsonl"
    lines = [json.dumps(good[0]), "{not json", json.dumps({k: v for k, v in good[1].items() if k != "reflections"})]
    bad.write_text("\n".join(lines) + "\n")
    runner = CliRunner()
    cfg = tmp_path / "evolver.toml"
    cfg.write_text('state_dir = "state"\n')
    r = runner.invoke(app, ["-c", str(cfg), "import", str(bad)])
    assert r.exit_code == 2
    assert f"{bad}:2: invalid JSON" in r.stderr and "nothing imported" in r.stderr
    assert not (tmp_path / "state" / "evolver.db").exists() or Store.open(tmp_path / "state" / "evolver.db").datasets() == []
    r = runner.invoke(app, ["-c", str(cfg), "import", str(bad), "--on-error", "skip", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["imported"] == 1 and data["skipped"] == 2
    assert any(":3: missing field 'reflections'" in p for p in data["problems"])


def test_export_hf(tmp_path: Path) -> None:
    from datasets import load_from_disk

    store = Store.open(tmp_path / "e.db")
    import_file(store, SHARED / SAMPLES["D±"])
    out = export_snapshots(store, None, tmp_path / "hf", fmt="hf")
    ds = load_from_disk(str(out["D±"]))
    assert len(ds) == len(_rows(SHARED / SAMPLES["D±"]))
    assert "reflection_chosen" in ds.column_names
