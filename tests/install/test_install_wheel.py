"""The wheel, installed as a user installs it, works from any directory.

Builds the wheel of this checkout, installs it into a fresh virtual environment (no checkout on the
path) next to torch installed first (the user's own), and from another directory runs the tools:
``--help``, ``--version``, a ``fast_dev_run`` training, a training of the user's own
``--config-dir`` experiment and an evaluation of its checkpoint. The wheel is built with the same
settings as ``make setup`` (``SOFTPOOL_CUDA``, ``TORCH_CUDA_ARCH_LIST`` from the environment), so its
extension reuses the objects ``make setup`` compiled into build/. About 3-4 minutes on 2 idle cores,
most of it installing torch into the fresh environment.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

import softpool_video

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"])
# 4 motion classes x 8 videos of 16 frames at 48x48: 24 train and 8 test videos (UCF-101 layout)
SYNTHETIC = {"num_classes": 4, "videos_per_class": 8, "frames": 16, "size": 48, "seed": 0, "kinetics": False}
NOT_IN_THE_CORE = (
    "pytorchvideo",
    "fvcore",
    "decord",
    "torchcodec",
    "onnx",
    "onnxruntime",
    "skvideo",
    "pytest",
)


@dataclass
class Installed:
    venv: Path
    elsewhere: Path  # the working directory of every command: not the checkout
    env: dict[str, str]
    data_root: Path
    torch_before: str
    wheel: Path
    timings: dict[str, float] = field(default_factory=dict)

    def tool(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def run(self, *command: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            list(command), cwd=self.elsewhere, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            pytest.fail(
                f"{' '.join(command)} exited {done.returncode}\n--- stdout\n{done.stdout[-3000:]}"
                f"\n--- stderr\n{done.stderr[-5000:]}"
            )
        return done


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything that points at the checkout or its venv."""
    # PYTHONDONTWRITEBYTECODE: torch is installed with --no-compile (a minute less), so let the
    # first run of a tool cache the bytecode of what it imports, as a user's environment does.
    dropped = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("SOFTPOOL_")}
    env.update(OMP_NUM_THREADS="1", PYTHONNOUSERSITE="1", **extra)
    return env


def _package_files() -> set[str]:
    """The files of the package in this checkout (tracked or new, not ignored), relative to it."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "softpool_video", "conf"],
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    return {name for name in listed.stdout.decode().split("\0") if name and (REPO / name).is_file()}


def _step(timings: dict[str, float], name: str, command: list[str], **kwargs) -> None:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    timings[name] = time.perf_counter() - start
    if done.returncode != 0:
        output = f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        pytest.fail(f"{name}: {' '.join(command)} exited {done.returncode}\n{output}")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    from softpool_video.data.synthetic import generate_synthetic_dataset

    base = tmp_path_factory.mktemp("wheel_install")
    timings: dict[str, float] = {}
    dist, venv, elsewhere = (base / name for name in ("dist", "venv", "elsewhere"))
    elsewhere.mkdir()

    # the wheel, compiled against this interpreter's torch with make setup's settings
    build_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    build_env.setdefault("MAX_JOBS", "2")
    _step(
        timings,
        "build wheel",
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-build-isolation",
            "--no-deps",
            "-w",
            str(dist),
            str(REPO),
        ],
        env=build_env,
        timeout=1800,
        cwd=elsewhere,
    )
    (wheel,) = dist.glob("softpool_video-*.whl")

    # a fresh environment with the user's torch (the same release the wheel was built for)
    env = _clean_env(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    _step(timings, "create venv", [sys.executable, "-m", "venv", str(venv)], env=env, timeout=300)
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "--no-compile",
        "-c",
        str(REPO / "constraints.txt"),
    ]
    torch_pins = [f"{name}=={importlib.metadata.version(name)}" for name in ("torch", "torchvision")]
    _step(timings, "install torch", [*pip, *torch_pins], env=env, timeout=1200, cwd=elsewhere)
    probe = [str(venv / "bin" / "python"), "-c", "import torch; print(torch.__version__)"]
    torch_before = subprocess.run(probe, env=env, capture_output=True, text=True, check=True).stdout.strip()
    # the wheel: its dependencies are ranges; constraints.txt only keeps CI reproducible
    _step(timings, "install wheel", [*pip, str(wheel)], env=env, timeout=1200, cwd=elsewhere)

    start = time.perf_counter()
    data_root = generate_synthetic_dataset(base / "data" / "synthetic", **SYNTHETIC)
    timings["dataset"] = time.perf_counter() - start
    return Installed(venv, elsewhere, env, data_root, torch_before, wheel, timings)


_PROBE = r"""
import json, sys, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import torch, softpool_video, softpool_video.ops as ops
    from softpool_video.train.config import conf_dir
import importlib.util
print(json.dumps({
    "file": softpool_video.__file__, "version": softpool_video.__version__, "conf": str(conf_dir()),
    "torch": str(torch.__version__), "info": ops.extension_info(),
    "warnings": [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)],
    "optional": {name: importlib.util.find_spec(name) is not None for name in sys.argv[1].split(",")},
}))
"""


def test_installed_package_is_complete_and_alone(installed):
    result = json.loads(
        installed.run(str(installed.venv / "bin" / "python"), "-c", _PROBE, ",".join(NOT_IN_THE_CORE)).stdout
    )
    site = installed.venv.resolve()
    package = Path(result["file"]).resolve().parent
    assert site in package.parents and REPO not in package.parents
    assert Path(result["conf"]).resolve() == package / "conf"
    assert (package / "conf" / "train.yaml").is_file() and (
        package / "conf" / "experiment" / "demo.yaml"
    ).is_file()
    assert result["version"] == softpool_video.__version__
    # the extension was built for exactly the torch it runs with, and says so without complaint
    assert result["torch"] == installed.torch_before
    info = result["info"]
    assert info["loaded"] and info["cpu"] and info["torch_version"] == installed.torch_before
    assert info["cuda"] == (info["cuda_version"] is not None)
    assert result["warnings"] == []
    # installing the package did not replace the user's torch, and the environment is consistent
    assert installed.run(str(installed.venv / "bin" / "python"), "-m", "pip", "check").returncode == 0
    # the core install brings none of the optional packages
    assert not any(result["optional"].values()), result["optional"]


def test_wheel_holds_the_package_its_configs_and_nothing_else(installed):
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    dist_info = {n for n in names if n.startswith(f"softpool_video-{softpool_video.__version__}.dist-info/")}
    (library,) = [n for n in names if n.startswith("softpool_video/_C") and n.endswith(".so")]
    expected = {
        name.replace("conf/", "softpool_video/conf/", 1) if name.startswith("conf/") else name
        for name in _package_files()
        if name.endswith((".py", ".yaml"))
        or (name.startswith("softpool_video/csrc/") and name.endswith(".h"))
    }
    assert names - dist_info - {library} == expected
    assert {n.split(".dist-info/")[1] for n in dist_info} >= {
        "METADATA",
        "RECORD",
        "WHEEL",
        "entry_points.txt",
        "licenses/LICENSE",
    }


@pytest.mark.parametrize("tool", ["softpool-train", "softpool-eval"])
def test_help_works_from_another_directory(installed, tool):
    done = installed.run(installed.tool(tool), "--help", timeout=300)
    assert "r2plus1d_tiny" in done.stdout and "synthetic" in done.stdout


@pytest.mark.xfail(
    not (REPO / "softpool_video" / "cli.py").is_file(),
    reason="--version comes with the shared command-line grammar (softpool_video/cli.py)",
    strict=True,
)
def test_every_console_script_reports_the_version(installed):
    for tool in SCRIPTS:
        done = installed.run(installed.tool(tool), "--version", timeout=300, check=False)
        assert done.returncode == 0 and softpool_video.__version__ in done.stdout, (
            tool,
            done.stdout,
            done.stderr,
        )


def _tiny(installed: Installed, tiny_overrides, runs: Path, keep_data_group: bool = True) -> list[str]:
    overrides = tiny_overrides(installed.data_root, runs)
    return [o for o in overrides if keep_data_group or not o.startswith("data=")]


def test_fast_dev_run_training(installed, tiny_overrides):
    runs = installed.elsewhere / "fast_dev_runs"
    installed.run(
        installed.tool("softpool-train"), *_tiny(installed, tiny_overrides, runs), "trainer.fast_dev_run=true"
    )
    (run_dir,) = [p.parent for p in runs.rglob("config.yaml")]
    assert not list(run_dir.rglob("*.pt"))  # fast_dev_run writes no checkpoints


def _user_configs(root: Path, data_root: Path) -> Path:
    """What a user writes: an experiment and a dataset config of their own (outside the package)."""
    (root / "experiment").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "data" / "user_motion.yaml").write_text(
        f"# my copy of the motion dataset, on the settings of the packaged synthetic config\n"
        f"defaults:\n  - synthetic\n  - _self_\nname: user_motion\nroot: {data_root}\n"
    )
    (root / "experiment" / "user_tiny.yaml").write_text(
        "# @package _global_\n"
        "defaults:\n  - override /data: user_motion\n  - override /optim: adamw\n"
        "name: user_tiny\n"
        "trainer:\n  epochs: 1\n  limit_train_batches: 3\n"
    )
    return root


def test_user_config_dir_experiment_then_evaluation(installed, tiny_overrides):
    conf = _user_configs(installed.elsewhere / "my_configs", installed.data_root)
    runs = installed.elsewhere / "runs"
    overrides = [
        o for o in _tiny(installed, tiny_overrides, runs, keep_data_group=False) if "epochs" not in o
    ]
    overrides = [o for o in overrides if not o.startswith(("optim=", "optim.lr"))]
    start = time.perf_counter()
    installed.run(
        installed.tool("softpool-train"), "--config-dir", conf.name, "experiment=user_tiny", *overrides
    )
    installed.timings["train"] = time.perf_counter() - start

    (checkpoint,) = runs.glob("user_tiny/*/checkpoints/last.pt")
    config = yaml.safe_load((checkpoint.parents[1] / "config.yaml").read_text())
    assert config["name"] == "user_tiny" and config["data"]["name"] == "user_motion"
    assert config["optim"]["name"] == "adamw" and config["trainer"]["epochs"] == 1

    start = time.perf_counter()
    installed.run(installed.tool("softpool-eval"), f"checkpoint={checkpoint}", "trainer.progress_bar=false")
    installed.timings["eval"] = time.perf_counter() - start
    (summary,) = checkpoint.parents[1].glob("eval_test_*/summary.json")
    result = json.loads(summary.read_text())
    assert result["num_videos"] == 8 and result["num_views"] == 16  # 8 test videos x 2 clips
    assert 0.0 <= result["video_top1"] <= 100.0
    print("wheel install timings (s):", {k: round(v, 1) for k, v in installed.timings.items()})


def test_pytorchvideo_models_ask_for_the_extra(installed, tiny_overrides):
    runs = installed.elsewhere / "runs_slowfast"
    done = installed.run(
        installed.tool("softpool-train"),
        *[o for o in _tiny(installed, tiny_overrides, runs) if not o.startswith("model=")],
        "model=slowfast_r50",  # (a key given twice is an error)
        check=False,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "pip install 'softpool_video[pytorchvideo]'" in done.stderr
