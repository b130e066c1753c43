"""scripts/bootstrap.sh on a GPU image's python: a virtual environment that already holds torch.

The stand-in for `/opt/torch/.venv/bin/python` is a venv whose site-packages reach this test run's
packages (torch included) through a .pth file, as an image's venv holds its own. Bootstrap runs on
a copy of the checkout, with pip held to a local wheelhouse of the build backend only (`PIP_NO_INDEX`):
any attempt to install torch, or anything else the parent already has, fails the run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

COPIED = ("pyproject.toml", "README.md", "LICENSE", "evolver.toml", "scripts", "evolver", "policies", "evals")


def file_indexes() -> list[str]:
    """The file:// package indexes of this machine's pip configuration (no network)."""
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    out += " " + os.environ.get("PIP_INDEX_URL", "") + " " + os.environ.get("PIP_EXTRA_INDEX_URL", "")
    return sorted(set(re.findall(r"file://[^\s'\"]+", out)))


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """hatchling, editables and their dependencies (pip's isolated build of the editable install needs them)."""
    indexes = file_indexes()
    if not indexes:
        pytest.skip("no local (file://) package index to take the build backend from offline")
    wh = tmp_path_factory.mktemp("wheelhouse")
    env = {
        **os.environ,
        "PIP_INDEX_URL": indexes[0],
        "PIP_EXTRA_INDEX_URL": " ".join(indexes[1:]),
        "PIP_FIND_LINKS": "",
    }
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--only-binary=:all:",
            "-d",
            str(wh),
            "hatchling>=1.25",
            "editables~=0.3",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    return wh


def image_venv(root: Path) -> Path:
    """A venv (not the base interpreter) that imports this run's torch: the GPU image's python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    py = root / "bin" / "python"
    purelib = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], capture_output=True, text=True, check=True
    ).stdout.strip()
    ours = sysconfig.get_path("purelib")
    (Path(purelib) / "image_torch.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return py


def run_py(py: Path, code: str) -> str:
    return subprocess.run([py, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_bootstrap_keeps_the_torch_of_a_venv_python(tmp_path: Path, repo_root: Path, wheelhouse: Path) -> None:
    image_py = image_venv(tmp_path / "image")
    torch_file = run_py(image_py, "import torch; print(torch.__file__)")
    assert run_py(image_py, "import sys; print(sys.prefix != sys.base_prefix)") == "True"  # a venv, as on the image
    checkout = tmp_path / "checkout"
    for name in COPIED:
        src = repo_root / name
        if src.is_dir():
            shutil.copytree(src, checkout / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            checkout.mkdir(exist_ok=True)
            shutil.copy2(src, checkout / name)
    env = {**os.environ, "PYTHON": str(image_py), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse)}
    env.pop("PIP_INDEX_URL", None)
    env.pop("PIP_EXTRA_INDEX_URL", None)
    done = subprocess.run(
        ["bash", str(checkout / "scripts" / "bootstrap.sh")], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert "installing torch" not in done.stderr
    assert "keeping the torch" in done.stderr

    vpy = checkout / ".venv" / "bin" / "python"
    # The parent's torch, not a copy: nothing named torch in the new venv's own site-packages.
    assert run_py(vpy, "import torch; print(torch.__file__)") == torch_file
    own = Path(run_py(vpy, "import sysconfig; print(sysconfig.get_path('purelib'))"))
    assert not list(own.glob("torch*"))
    assert run_py(vpy, "import evolver; print(evolver.__file__)") == str(checkout / "evolver" / "__init__.py")
    pinned = (checkout / ".venv" / "constraints.txt").read_text().strip()
    assert pinned == f"torch=={run_py(image_py, 'import torch; print(torch.__version__)')}"

    again = subprocess.run(
        ["bash", str(checkout / "scripts" / "bootstrap.sh")], env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0 and again.stderr == ""  # the stamp: nothing to do


def test_bootstrap_minimum_torch_matches_pyproject(repo_root: Path) -> None:
    script = (repo_root / "scripts" / "bootstrap.sh").read_text()
    pyproject = (repo_root / "pyproject.toml").read_text()
    minimum = re.search(r'^MIN_TORCH="([\d.]+)"', script, re.M)
    assert minimum is not None
    assert f'"torch>={minimum.group(1)}"' in pyproject
