"""`evolver eval --generation N` on a tiny real model: evaluates once, then reads the store."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from typer.testing import CliRunner

from evolver.cli.app import app
from evolver.store import Store


def _folder(d: Path, model: Path, repo_root: Path, limit: int) -> Path:
    """A working folder: the tiny model, a `hashy` suite of `limit` items, the shipped policies; no store."""
    (d / "evals" / "hashy").mkdir(parents=True)
    (d / "evals" / "hashy" / "manifest.toml").write_text(
        f'name = "hashy"\ntask = "evolver.testing.tasks:HashTask"\nlimit = {limit}\n')
    shutil.copytree(repo_root / "policies", d / "policies")
    (d / "evolver.toml").write_text(
        f'[model]\nbase = "{model}"\n[generation.trial]\nmax_new_tokens = 8\n'
        '[generation.reflection]\nmax_new_tokens = 8\n[evaluation]\nbenchmarks = ["hashy"]\n')
    return d


def test_eval_generation_runs_then_is_cached(tmp_path: Path, tiny_model_dir: Path, repo_root: Path) -> None:
    d = _folder(tmp_path / "w", tiny_model_dir, repo_root, limit=12)
    with Store.open(d / "state" / "evolver.db") as s:
        s.create_generation(0, None, str(tiny_model_dir), "h", "{}", status="base")
    runner = CliRunner()
    args = ["-c", str(d / "evolver.toml"), "eval", "--generation", "0", "--json"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)["results"]["hashy"]["hashy"]["standard"]
    assert 0 <= res["acc@t1"] <= res["acc@t2"] <= 1
    with Store.open(d / "state" / "evolver.db") as s:
        n = s.counts()["attempts"]
        assert n >= 12
    t0 = time.time()
    again = runner.invoke(app, args)
    assert json.loads(again.stdout)["results"]["hashy"]["hashy"]["standard"] == res
    with Store.open(d / "state" / "evolver.db") as s:
        assert s.counts()["attempts"] == n  # nothing generated the second time
    assert time.time() - t0 < 30
    bad = runner.invoke(app, ["-c", str(d / "evolver.toml"), "eval", "--generation", "7"])
    assert bad.exit_code == 2 and "generation 7 does not exist" in bad.stderr
    none = runner.invoke(app, ["-c", str(d / "evolver.toml"), "eval"])
    assert none.exit_code == 2


def test_eval_generation_0_on_a_fresh_folder_creates_the_store(tmp_path: Path, tiny_model_dir: Path,
                                                               repo_root: Path) -> None:
    """No store yet: `eval --generation 0` creates it and generation 0 (versions recorded) as the daemon would,
    reports progress as lines on stderr (no terminal), and the daemon's own evaluation later finds it cached."""
    d = _folder(tmp_path / "fresh", tiny_model_dir, repo_root, limit=6)
    runner = CliRunner()
    r = runner.invoke(app, ["-c", str(d / "evolver.toml"), "eval", "--generation", "0", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["schema_version"] == 1 and "hashy" in doc["results"]["hashy"]
    assert "progress.done" in r.stderr and "trial 1" in r.stderr
    with Store.open(d / "state" / "evolver.db") as s:
        g = s.generation(0)
        assert g is not None and g.status == "base" and g.parent_id is None
        assert json.loads(s.rows("SELECT versions FROM generation_versions WHERE generation_id = 0")[0][0])["torch"]
        n = s.counts()["attempts"]
    again = runner.invoke(app, ["-c", str(d / "evolver.toml"), "eval", "--generation", "0", "--json"])
    assert json.loads(again.stdout)["results"] == doc["results"]
    with Store.open(d / "state" / "evolver.db") as s:
        assert s.counts()["attempts"] == n
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "evolver.toml").write_text("seed = 1\n")
    missing = runner.invoke(app, ["-c", str(tmp_path / "empty" / "evolver.toml"), "eval", "--generation", "3"])
    assert missing.exit_code == 2 and "no store yet, so no generation 3" in missing.stderr
    assert not (tmp_path / "empty" / "state").exists()
