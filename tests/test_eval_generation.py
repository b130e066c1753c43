"""`evolver eval --generation N` on a tiny real model: evaluates once, then reads the store."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from typer.testing import CliRunner

from evolver.cli.app import app
from evolver.store import Store


def test_eval_generation_runs_then_is_cached(tmp_path: Path, tiny_model_dir: Path, repo_root: Path) -> None:
    d = tmp_path / "w"
    (d / "evals" / "hashy").mkdir(parents=True)
    (d / "evals" / "hashy" / "manifest.toml").write_text(
        'name = "hashy"\ntask = "evolver.testing.tasks:HashTask"\nlimit = 12\n')
    shutil.copytree(repo_root / "policies", d / "policies")
    (d / "evolver.toml").write_text(
        f'[model]\nbase = "{tiny_model_dir}"\n[generation.trial]\nmax_new_tokens = 8\n'
        '[generation.reflection]\nmax_new_tokens = 8\n[evaluation]\nbenchmarks = ["hashy"]\n')
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
