"""The built wheel works on its own: `evolver init` finds the shipped defaults inside the package.

The wheel goes, without dependencies, into a fresh venv under tmp_path; the dependencies already
installed for the test run are made visible through a .pth file, while the repo's editable evolver is not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import site as site_module
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(args: list[str | Path], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300) -> str:
    out = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{args}\nstdout: {out.stdout}\nstderr: {out.stderr}"
    return out.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    # Build isolation fetches hatchling from the package index, as any user's `pip install` would.
    _run([sys.executable, "-m", "pip", "wheel", REPO, "--no-deps", "-w", dist, "-q"], cwd=dist)
    (whl,) = dist.glob("evolver-*.whl")
    return whl


def test_wheel_carries_the_defaults(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "evolver/_defaults/evolver.toml" in names
    assert "evolver/_defaults/policies/default.toml" in names
    assert any(n.startswith("evolver/_defaults/evals/") for n in names)
    assert "evolver/cli/app.py" in names
    assert "evolver/py.typed" in names  # type checkers read the package's annotations
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names), names
    assert not any("__pycache__" in n or n.startswith("tests/") for n in names)


def test_installed_wheel_inits_and_reports_status(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    py = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", "-q", wheel], cwd=tmp_path)

    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).strip())
    # Where the test run's dependencies live (the venv's, and the system's on a --system-site-packages venv).
    # Plain directory lines: the .pth files inside them, such as the editable evolver's, are not processed.
    deps = [Path(d) for d in site_module.getsitepackages() if Path(d).is_dir()]
    assert site not in deps
    (site / "_evolver_test_deps.pth").write_text("".join(f"{d}\n" for d in deps))

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EVOLVER_CONFIG", "VIRTUAL_ENV")}
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = _run([py, "-c", "import evolver, typer; print(evolver.__file__); print(typer.__file__)"], cwd=outside, env=env)
    evolver_file, typer_file = (Path(p) for p in where.split())
    assert evolver_file.is_relative_to(venv), f"evolver imported from {evolver_file}, not the wheel"
    assert any(typer_file.is_relative_to(d) for d in deps)

    exe = venv / "bin" / "evolver"
    proj = outside / "proj"
    _run([exe, "init", proj], cwd=outside, env=env)
    assert (proj / "evolver.toml").read_text() == (REPO / "evolver.toml").read_text()
    assert (proj / "policies" / "default.toml").read_text() == (REPO / "policies" / "default.toml").read_text()
    assert (proj / "evals").is_dir() and (proj / "state").is_dir()
    assert "well-formed" in _run([exe, "config", "check"], cwd=proj, env=env)

    info = json.loads(_run([exe, "status", "--json"], cwd=proj, env=env))
    assert info["generations"] == 0 and info["current"] is None
    assert Path(info["state_dir"]) == proj / "state"
    assert (proj / "state" / "logs" / "evolver.jsonl").is_file()
