"""Model names and paths (``rtmer.core.model.resolve_model``), and the shipped models in a wheel."""

from __future__ import annotations

import csv
import io
import os
import shutil
import site
import subprocess
import sys
import zipfile
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import rtmer.core.model
from conftest import music_like
from rtmer.errors import ModelContractError
from rtmer.core.model import StreamingModel, is_shipped_name, resolve_model, shipped_models

REPO = Path(__file__).resolve().parents[3]


def test_shipped_names() -> None:
    assert shipped_models() == ["default", "large"]
    assert all(is_shipped_name(n) for n in ("default", "large", "rtmer-default", "rtmer-large"))
    assert not is_shipped_name("larg") and not is_shipped_name(Path("default"))


def test_default_and_its_full_name_are_the_shipped_file_from_importlib_resources() -> None:
    path = resolve_model("default")
    assert path == resolve_model("rtmer-default") == rtmer.core.model.DEFAULT_MODEL_PATH
    assert path.name == "rtmer-default.onnx" and path.is_file()
    assert path == Path(str(files("rtmer.models") / "rtmer-default.onnx"))


def test_streaming_model_loads_the_shipped_default_by_default() -> None:
    model = StreamingModel()
    assert model.info.name == "rtmer-default"
    assert model.path == str(resolve_model("default"))
    assert StreamingModel("rtmer-default").path == model.path


def test_anything_else_is_a_path(tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_model(str(tiny_model_path)) == tiny_model_path
    assert resolve_model(tiny_model_path) == tiny_model_path
    assert resolve_model(tmp_path / "missing.onnx") == tmp_path / "missing.onnx"  # StreamingModel says it is missing
    monkeypatch.setenv("HOME", str(tiny_model_path.parent))
    assert resolve_model("~/tiny.onnx") == tiny_model_path
    assert resolve_model("tiny.onnx", relative_to=tiny_model_path.parent) == tiny_model_path
    # a name-like spec that is a file in the working directory is that file, and a name
    # wins over a file of the same name
    monkeypatch.chdir(tmp_path)
    shutil.copy(tiny_model_path, tmp_path / "mymodel")
    shutil.copy(tiny_model_path, tmp_path / "default")
    assert resolve_model("mymodel") == Path("mymodel")
    assert StreamingModel("mymodel").info.name == "tiny-test"
    assert resolve_model("default").parent != tmp_path and resolve_model("./default") == Path("default")


def test_an_unknown_name_lists_the_shipped_ones() -> None:
    with pytest.raises(
        ModelContractError,
        match=r"'larg': is neither a shipped model \(default, large\) nor a file; "
        r"--model takes a shipped name or a path to an \.onnx file",
    ):
        resolve_model("larg")
    with pytest.raises(ModelContractError, match=r"'nosuch': is neither a shipped model"):
        StreamingModel("nosuch")


def test_a_shipped_name_whose_file_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(rtmer.core.model._SHIPPED, "large", "rtmer-not-trained")
    with pytest.raises(
        ModelContractError,
        match=r"'large': the shipped model rtmer-not-trained\.onnx is not installed in rtmer\.models "
        r"\(installed: default\); give another name or a path",
    ):
        StreamingModel("large")


def test_every_folder_of_the_package_is_listed_in_packages() -> None:
    """A data folder missing from [tool.setuptools] packages makes setuptools warn that it
    is "absent from the `packages` configuration" (and, one day, leave it out)."""
    import tomllib

    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {
        ".".join(("rtmer", *d.relative_to(REPO / "rtmer").parts))
        for d in (REPO / "rtmer").rglob("*")
        if d.is_dir() and "__pycache__" not in d.parts and any(f.is_file() for f in d.iterdir())
    }
    assert folders <= set(setup["packages"]), sorted(folders - set(setup["packages"]))
    for package in folders:  # a folder of data files (no __init__.py), not a floor of code
        if not (REPO.joinpath(*package.split(".")) / "__init__.py").is_file():
            assert package in setup["package-data"], f"{package}'s files are not package data"


def test_an_installed_wheel_finds_its_models(tmp_path: Path) -> None:
    """Build a wheel, install it into a fresh venv, run ``rtmer analyze`` away from the checkout.

    Offline: the wheel is built without build isolation (setuptools from the test venv) and
    installed with --no-deps; the fresh venv sees the test venv's packages (numpy,
    onnxruntime, ...) through a .pth line. A .pth line adds a folder without running the
    .pth files in it, so the test venv's editable install of rtmer stays out of sight.
    """
    src, dist, venv, work = (tmp_path / d for d in ("src", "dist", "venv", "work"))
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("rtmer", "training", "models"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PIP_FIND_LINKS")}
    env["PIP_NO_INDEX"] = "1"

    def run(*cmd: str | Path, cwd: Path = tmp_path) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, f"{cmd}\n{res.stdout}\n{res.stderr}"
        return res

    run(sys.executable, "-m", "pip", "wheel", src, "--no-deps", "--no-build-isolation", "-q", "-w", dist)
    (wheel,) = dist.glob("rtmer-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "rtmer/models/rtmer-default.onnx" in names and "rtmer/models/rtmer-default.md" in names
    assert {f"rtmer/webpage/{n}" for n in ("index.html", "app.js", "style.css")} <= set(names)  # rtmer.outputs.web's page
    assert not [n for n in names if n.startswith("rtmer/models/") and n.endswith((".json", ".png"))]
    # rtmer demo's music and the typing marker: an editable install finds them in the checkout either way
    assert {f"rtmer/demo_music/{s}.ogg" for s in ("calm", "excited", "sad", "tense")} | {"rtmer/py.typed"} <= set(names)
    assert not [n for n in names if not n.startswith(("rtmer/", "rtmer-"))], "only rtmer itself installs"

    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    # installed before the .pth exists, so pip cannot see (or touch) the test venv's rtmer
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel)
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    (Path(purelib) / "test-venv.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    work.mkdir()
    x = music_like(2.2, 16000, seed=3)
    sf.write(work / "clip.wav", x, 16000, subtype="PCM_16")
    where = run(python, "-c", "from rtmer.core.model import resolve_model; print(resolve_model('default'))", cwd=work)
    assert Path(where.stdout.strip()).is_relative_to(purelib), where.stdout
    res = run(venv / "bin" / "rtmer", "analyze", "clip.wav", cwd=work)
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [float(r["time_s"]) for r in rows] == [0.5, 1.0, 1.5, 2.0, 2.5]
    assert all(np.isfinite(float(r["valence"])) for r in rows)
