# ruff: noqa: E501 - the table of cases reads best one case per line
"""Every mistake people make, fed to the real tools: exit status 2 (1 for an unreadable checkpoint),
exactly one line on stderr naming the key or file and what would be accepted, no traceback, nothing
written (no run folder, no dataset, no report).

The mistakes of the issue that asked for this run the installed console scripts in subprocesses,
in parallel (each is mostly Python start-up), each in its own empty working directory; the others
call the same entry points in this process (the same code from ``main(argv)`` on, much faster).
"""

from __future__ import annotations

import importlib
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from cli_tools import REPO, Run, console_scripts, files_under, run_many

import softpool_video
from softpool_video.bench.cli import SUBCOMMANDS


@dataclass(frozen=True)
class Case:
    """``tool args`` must exit with ``code`` and print one line on stderr holding every ``expect``.

    ``TINY`` in ``args`` stands for the overrides of a tiny training run (the tiny dataset, runs under
    the working directory); ``{name}`` placeholders are the fixture files (``{ckpt}``, ``{text}``...).
    """

    id: str
    tool: str
    args: tuple[str, ...]
    expect: tuple[str, ...]
    code: int = 2
    marks: tuple = field(default=(), compare=False)
    subprocess: bool = False  # True: the console script in a subprocess; False: its main() in this process

    @property
    def program(self) -> str:
        """The name the error line starts with."""
        if self.tool == "softpool-bench" and self.args and self.args[0] in SUBCOMMANDS:
            return f"softpool-bench {self.args[0]}"
        return _program(self.tool)


NO_GPU = (pytest.mark.skipif(torch.cuda.is_available(), reason="the mistake is asking for a missing GPU"),)

# fmt: off
CASES = [
    # ---- softpool-train: Hydra's own errors
    Case("train-group-option", "softpool-train", ("TINY", "model=nope"), ("model=nope: no such model config", "r2plus1d_tiny, r3d_18"), subprocess=True),
    Case("train-unknown-key", "softpool-train", ("TINY", "trainer.epoch=3"), ("trainer.epoch=3: the config has no key", "did you mean trainer.epochs?", "+trainer.epoch=3"), subprocess=True),
    Case("train-unknown-top-key", "softpool-train", ("TINY", "nope=1"), ("nope=1: the config has no key 'nope'",)),
    Case("train-bad-syntax", "softpool-train", ("TINY", "a=b=c="), ("'a=b=c=' is not a valid override",), subprocess=True),
    Case("train-bad-list", "softpool-train", ("TINY", "logger=[csv"), ("'logger=[csv' is not a valid override",)),
    Case("train-logger-option", "softpool-train", ("TINY", "logger=[foo]"), ("logger=foo: no such logger config", "csv, tensorboard")),
    Case("train-append-existing", "softpool-train", ("TINY", "+seed=3"), ("+seed: seed is already set; write seed=VALUE",)),
    Case("train-interpolation", "softpool-train", ("TINY", "name=${nope}"), ("name: Interpolation key 'nope' not found",)),
    # ---- softpool-train: the common grammar
    Case("train-repeated-key", "softpool-train", ("trainer.epochs=2", "trainer.epochs=3"), ("trainer.epochs is given twice (trainer.epochs=2 and trainer.epochs=3)",)),
    Case("train-device-and-accelerator", "softpool-train", ("device=cpu", "trainer.accelerator=cpu"), ("trainer.accelerator is given twice",)),
    Case("train-flag", "softpool-train", ("TINY", "--epochs=3"), ("unknown flag '--epochs=3'", "key=value")),
    Case("train-positional", "softpool-train", ("TINY", "fast"), ("'fast' is not an override: write key=value",)),
    Case("train-cfg-value", "softpool-train", ("--cfg", "everything"), ("--cfg everything: must be one of job, hydra, all",)),
    # ---- softpool-train: values, devices, files
    Case("train-lr", "softpool-train", ("TINY", "optim.lr=abc"), ("optim.lr='abc' must be a positive number",), subprocess=True),
    Case("train-temperature", "softpool-train", ("TINY", "pooling.temperature=0"), ("pooling.temperature=0 must be a positive number",)),
    Case("train-batch-size", "softpool-train", ("TINY", "++data.batch_size=0"), ("data.batch_size=0 must be an integer >= 1",)),
    Case("train-precision-cpu", "softpool-train", ("TINY", "trainer.precision=bf16"), ("trainer.precision=bf16 is not supported for training on CPU",)),
    Case("train-device-name", "softpool-train", ("TINY", "device=tpu"), ("trainer.accelerator='tpu' is not one of auto, cpu, gpu",)),
    Case("train-gpu-missing", "softpool-train", ("TINY", "trainer=gpu"), ("trainer.accelerator=gpu needs a CUDA GPU", "trainer=cpu"), marks=NO_GPU, subprocess=True),
    Case("train-experiment-gpu", "softpool-train", ("experiment=ucf101_r2plus1d",), ("trainer.accelerator=gpu needs a CUDA GPU",), marks=NO_GPU, subprocess=True),
    Case("train-pretrained-missing", "softpool-train", ("TINY", "model.pretrained=/missing.pth"), ("model.pretrained=/missing.pth: no such file",), subprocess=True),
    Case("train-pretrained-text", "softpool-train", ("TINY", "model.pretrained={text}"), ("model.pretrained=", "is a text file, not a PyTorch checkpoint")),
    Case("train-pretrained-foreign", "softpool-train", ("TINY", "model.pretrained={torchvision}"), ("model.pretrained=", "r3d_18-kinetics.pth"), subprocess=True),
    Case("train-builder-option", "softpool-train", ("TINY", "++model.kwargs.depth=3"), ("model.kwargs.depth: r2plus1d_tiny does not take this option",)),
    Case("train-frames-conflict", "softpool-train", ("TINY", "++data.num_frames=16"), ("data.num_frames=16 but model.num_frames=8", "must agree")),
    Case("train-alpha-conflict", "softpool-train", ("TINY", "++data.alpha=2"), ("data.alpha=2 makes [slow, fast] clips but model r2plus1d_tiny takes one tensor",)),
    Case("train-resume-missing", "softpool-train", ("TINY", "resume=/no/such/last.pt"), ("resume='/no/such/last.pt': no such checkpoint file",)),
    Case("train-run-dir-taken", "softpool-train", ("TINY", "run_dir={run}"), ("already holds a run", "resume=auto")),
    Case("train-typo-root", "softpool-train", ("TINY", "data.root={cwd}/synthetik"), ("data.root=", "synthetik", "does not exist", "data.generate=true"), subprocess=True),
    Case("train-monitor", "softpool-train", ("TINY", "trainer.monitor=accuracy"), ("trainer.monitor='accuracy' is not a metric",)),
    Case("train-output-under-file", "softpool-train", ("TINY", "output_root={text}/runs"), ("run_dir=", "notes.pt, which is a file, not a folder")),
    Case("train-mixup-prob", "softpool-train", ("TINY", "mixup.prob=2"), ("mixup.prob=2 must be a probability in [0, 1]",)),
    Case("train-name-slash", "softpool-train", ("TINY", "name=a/../../b"), ("name='a/../../b' must be a plain folder name",)),
    Case("train-pretrained-folder", "softpool-train", ("TINY", "model.pretrained={data}"), ("model.pretrained=", "is a folder, not a weights file")),
    Case("train-num-classes", "softpool-train", ("TINY", "++data.num_classes=-3"), ("data.num_classes=-3 must be an integer >= 2",)),
    Case("train-decoder", "softpool-train", ("TINY", "++data.decoder=ffmpeg"), ("data.decoder must be one of pyav, decord, torchcodec, got 'ffmpeg'",)),
    Case("train-root-is-file", "softpool-train", ("TINY", "data.root={text}"), ("data.root=", "notes.pt) is a file, not a dataset folder",)),
    Case("train-root-empty-folder", "softpool-train", ("TINY", "data.root={cwd}"), ("is an empty folder; pass data.generate=true",)),
    # ---- softpool-eval
    Case("eval-no-checkpoint", "softpool-eval", (), ("checkpoint=PATH is required",)),
    Case("eval-missing-checkpoint", "softpool-eval", ("checkpoint={cwd}/best.pt",), ("best.pt: no such file",)),
    Case("eval-text-checkpoint", "softpool-eval", ("checkpoint={text}",), ("notes.pt", "is a text file, not a PyTorch checkpoint"), code=1, subprocess=True),
    Case("eval-video-checkpoint", "softpool-eval", ("checkpoint={video}",), ("bikes.mp4", "MP4/MOV video, not a PyTorch checkpoint"), code=1, subprocess=True),
    Case("eval-unsafe-checkpoint", "softpool-eval", ("checkpoint={evil}",), ("refused to load checkpoint", "posix.mkdir"), code=1),
    Case("eval-truncated-checkpoint", "softpool-eval", ("checkpoint={truncated}",), ("truncated.pt", "damaged"), code=1),
    Case("eval-other-model", "softpool-eval", ("checkpoint={other_model}",), ("its config does not build a model (model.name='r3d_18')",), code=1, subprocess=True),
    Case("eval-root-elsewhere", "softpool-eval", ("checkpoint={ckpt}", "+data_overrides.root={cwd}/elsewhere"), ("data.root=", "elsewhere", "evaluation never generates data"), subprocess=True),
    Case("eval-split", "softpool-eval", ("checkpoint={ckpt}", "split=validation"), ("split='validation' must be one of train, val, test",)),
    Case("eval-aggregation", "softpool-eval", ("checkpoint={ckpt}", "aggregation=median"), ("aggregation='median' is not one of mean, sum, max",)),
    Case("eval-frames-conflict", "softpool-eval", ("checkpoint={ckpt}", "+data_overrides.num_frames=16"), ("data.num_frames=16 but model.num_frames=8",)),
    Case("eval-repeated", "softpool-eval", ("checkpoint={ckpt}", "split=val", "split=test"), ("split is given twice",)),
    Case("eval-loader-batch", "softpool-eval", ("checkpoint={ckpt}", "+data_overrides.batch_size=-2"), ("data.batch_size=-2 must be an integer >= 1",)),
    Case("eval-loader-workers", "softpool-eval", ("checkpoint={ckpt}", "+data_overrides.num_workers=-1"), ("data.num_workers=-1 must be an integer >= 0",)),
    Case("eval-override-typo", "softpool-eval", ("checkpoint={ckpt}", "+data_overrides.rooot=/x"), ("data_overrides.rooot: not a data setting (did you mean root?)",), subprocess=True),
    Case("eval-output-under-file", "softpool-eval", ("checkpoint={ckpt}", "output_dir={text}/report"), ("output_dir=", "notes.pt, which is a file, not a folder")),
    # ---- softpool-predict
    Case("predict-missing-video", "softpool-predict", ("{cwd}/nope.mp4", "checkpoint={ckpt}"), ("nope.mp4: no such video file or folder",), subprocess=True),
    Case("predict-output-under-file", "softpool-predict", ("{video}", "checkpoint={ckpt}", "output={text}/p.json"), ("output=", "cannot write it", "is a file, not a folder")),
    Case("predict-topk", "softpool-predict", ("{video}", "checkpoint={ckpt}", "topk=0"), ("topk must be an integer >= 1, got '0'",)),
    Case("predict-repeated", "softpool-predict", ("{video}", "checkpoint={ckpt}", "topk=2", "topk=3"), ("topk is given twice (topk=2 and topk=3)",), subprocess=True),
    Case("predict-unknown", "softpool-predict", ("{video}", "checkpoint={ckpt}", "top_k=3"), ("unknown option 'top_k'", "did you mean topk?")),
    Case("predict-flag", "softpool-predict", ("{video}", "checkpoint={ckpt}", "--topk", "3"), ("'--topk': options are key=value, write topk=VALUE",)),
    Case("predict-device", "softpool-predict", ("{video}", "checkpoint={ckpt}", "device=tpu"), ("device must be auto, cpu, cuda or cuda:N, got 'tpu'",)),
    Case("predict-no-checkpoint", "softpool-predict", ("{video}",), ("checkpoint=PATH is required",)),
    Case("predict-text-checkpoint", "softpool-predict", ("{video}", "checkpoint={text}"), ("is a text file, not a PyTorch checkpoint",), code=1, subprocess=True),
    Case("predict-no-video", "softpool-predict", ("checkpoint={ckpt}",), ("no VIDEO or DIR given",)),
    Case("predict-key-space", "softpool-predict", ("{video}", "checkpoint", "{ckpt}"), ("'checkpoint' needs a value after '=': write checkpoint=VALUE",)),
    # ---- softpool-visualize
    Case("visualize-levels", "softpool-visualize", ("{video}", "levels=0"), ("levels must be an integer >= 1, got '0'",)),
    Case("visualize-unknown", "softpool-visualize", ("{video}", "kernal=2"), ("unknown option 'kernal'", "did you mean kernel?")),
    Case("visualize-missing-video", "softpool-visualize", ("{cwd}/nope.mp4",), ("video=", "nope.mp4: no such file"), subprocess=True),
    Case("visualize-output-under-file", "softpool-visualize", ("{video}", "output={text}/out"), ("output=", "which is a file, not a folder")),
    Case("visualize-no-video", "softpool-visualize", (), ("no VIDEO given",)),
    # ---- softpool-bench
    Case("bench-subcommand", "softpool-bench", ("operator",), ("unknown subcommand 'operator'", "op, models, data, retention")),
    Case("bench-device", "softpool-bench", ("op", "device=tpu"), ("device must be auto, cpu, cuda or cuda:N",)),
    Case("bench-flag", "softpool-bench", ("op", "--device", "cpu"), ("'--device': options are key=value, write device=VALUE",), subprocess=True),
    Case("bench-models-case", "softpool-bench", ("models", "cases=resnet"), ("cases: 'resnet' not among",)),
    Case("bench-repeated", "softpool-bench", ("retention", "levels=1", "levels=2"), ("levels is given twice",)),
    # ---- softpool-synth
    Case("synth-classes", "softpool-synth", ("num_classes=1",), ("num_classes must be an integer in [2, 10], got '1'",)),
    Case("synth-flag", "softpool-synth", ("--num-classes", "3"), ("unknown flag '--num-classes'",), subprocess=True),
    Case("synth-size", "softpool-synth", ("{cwd}/out", "size=31"), ("size must be an even number >= 32",)),
    Case("synth-root-is-file", "softpool-synth", ("root={text}",), ("root=", "notes.pt: is a file, not a folder",), subprocess=True),
    Case("synth-root-under-file", "softpool-synth", ("{text}/data",), ("root=", "which is a file, not a folder",)),
    Case("synth-key-space", "softpool-synth", ("num_classes", "3"), ("'num_classes' needs a value after '=': write num_classes=VALUE",)),
    Case("bench-key-space", "softpool-bench", ("op", "repeats", "3"), ("'repeats' needs a value after '='",)),
    # ---- softpool-demo
    Case("demo-positional", "softpool-demo", ("fast",), ("'fast' is not an override: write key=value",)),
    Case("demo-experiment", "softpool-demo", ("experiment=nope",), ("experiment=nope: no such experiment config", "pooling_comparison")),
    Case("demo-typo-root", "softpool-demo", ("data.root={cwd}/synthetik",), ("does not exist", "data.generate=true")),
    # ---- tools/*.py: the same grammar
    Case("tools-train", "tools/train.py", ("model=nope",), ("softpool-train: error: model=nope: no such model config",)),
    Case("tools-eval", "tools/eval.py", (), ("softpool-eval: error: checkpoint=PATH is required",)),
    Case("tools-predict", "tools/predict.py", ("{video}", "checkpoint={ckpt}", "topk=0"), ("softpool-predict: error: topk must be",)),
    Case("tools-visualize", "tools/visualize.py", ("{video}", "levels=x"), ("softpool-visualize: error: levels must be",)),
    Case("tools-benchmark", "tools/benchmark.py", ("nope",), ("softpool-bench: error: unknown subcommand 'nope'",)),
    Case("tools-benchmark-models", "tools/benchmark_models.py", ("threads=0",), ("softpool-bench models: error: threads must be",)),
    Case("tools-benchmark-data", "tools/benchmark_data.py", ("rounds=0",), ("softpool-bench data: error: rounds must be",)),
]
# fmt: on


def _program(tool: str) -> str:
    return {
        "tools/train.py": "softpool-train",
        "tools/eval.py": "softpool-eval",
        "tools/predict.py": "softpool-predict",
        "tools/visualize.py": "softpool-visualize",
        "tools/benchmark.py": "softpool-bench",
        "tools/benchmark_models.py": "softpool-bench models",
        "tools/benchmark_data.py": "softpool-bench data",
    }.get(tool, tool)


@pytest.fixture(scope="module")
def fixture_files(cli_data, cli_checkpoint, bad_files) -> dict[str, Path]:
    return {"data": cli_data, "ckpt": cli_checkpoint, "run": cli_checkpoint.parent.parent, **bad_files}


def _expand(case: Case, files: dict[str, Path], cwd: Path, tiny_overrides) -> list[str]:
    def fill(arg: str) -> str:
        for key, value in {"cwd": cwd, **files}.items():
            arg = arg.replace("{" + key + "}", str(value))
        return arg

    own = [fill(arg) for arg in case.args if arg != "TINY"]
    if "TINY" not in case.args:
        return own
    # the tiny run's settings, the case's own replacing those of the same key (never a key twice)
    return tiny_overrides(files["data"], cwd / "runs", *own)


def _watched(files: dict[str, Path]) -> dict[Path, list[str]]:
    return {folder: files_under(folder) for folder in (files["run"], files["text"].parent)}


@pytest.fixture(scope="module")
def subprocess_runs(request, fixture_files, tiny_overrides, tmp_path_factory):
    """The selected subprocess cases and ``--version`` of every console script, run at once:
    ``{id: (run, cwd)}``, plus what the fixture folders held before and after."""
    params = (item.callspec.params.get("case") for item in request.session.items if hasattr(item, "callspec"))
    selected = {case.id for case in params if isinstance(case, Case)}  # other modules have "case" too
    jobs, ids = [], []
    for case in CASES:
        if case.subprocess and case.id in selected:
            cwd = tmp_path_factory.mktemp(case.id)
            jobs.append((case.tool, _expand(case, fixture_files, cwd, tiny_overrides), cwd))
            ids.append(case.id)
    if any(item.name.startswith("test_version") for item in request.session.items):
        for tool in console_scripts():
            jobs.append((tool, ["--version"], tmp_path_factory.mktemp("version")))
            ids.append(f"version:{tool}")
    before = _watched(fixture_files)
    runs = run_many(jobs)
    return {
        "runs": {i: (run, job[2]) for i, run, job in zip(ids, runs, jobs, strict=True)},
        "before": before,
        "after": _watched(fixture_files),
    }


_MAINS = {
    "softpool-train": "softpool_video.train.cli:train_main",
    "softpool-eval": "softpool_video.train.cli:eval_main",
    "softpool-demo": "softpool_video.demo:main",
    "softpool-predict": "softpool_video.predict.cli:main",
    "softpool-visualize": "softpool_video.visualize.cli:main",
    "softpool-bench": "softpool_video.bench.cli:main",
    "softpool-synth": "softpool_video.data.synthetic:main",
}


def _run_in_process(tool: str, args: list[str], cwd: Path, capsys, monkeypatch) -> Run:
    """``tool``'s main (or the ``tools/*.py`` script itself) in this process, from ``cwd``."""
    cwd.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    if tool.endswith(".py"):
        monkeypatch.setattr(sys, "argv", [str(REPO / tool), *args])
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(REPO / tool), run_name="__main__")
        code = exit_info.value.code
    else:
        module, _, function = _MAINS[tool].partition(":")
        code = getattr(importlib.import_module(module), function)(args)
    out = capsys.readouterr()
    return Run([tool, *args], int(code or 0), out.out, out.err)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_a_mistake_is_one_line_and_writes_nothing(
    case, subprocess_runs, fixture_files, tiny_overrides, tmp_path, capsys, monkeypatch
):
    if case.subprocess:
        run, cwd = subprocess_runs["runs"][case.id]
    else:
        cwd = tmp_path / "cwd"
        before = _watched(fixture_files)
        run = _run_in_process(
            case.tool, _expand(case, fixture_files, cwd, tiny_overrides), cwd, capsys, monkeypatch
        )
        assert _watched(fixture_files) == before, "a report or file appeared next to the checkpoint/bad files"
    assert run.returncode == case.code, (run.args, run.stderr[-3000:])
    assert len(run.error_lines) == 1, run.stderr  # exactly one line: no log lines, no traceback
    line = run.error_lines[0]
    assert line.startswith(f"{case.program}: error: "), line
    for fragment in case.expect:
        assert fragment in line, (fragment, line)
    assert "Traceback" not in run.stderr and "weights_only" not in run.stderr + run.stdout
    assert files_under(cwd) == [], f"{case.id} wrote {files_under(cwd)}"  # no runs/, no data/, no report


def test_the_subprocess_cases_left_the_fixture_folders_alone(subprocess_runs):
    """No eval_* report next to the checkpoint, no file next to the bad files, no payload run."""
    assert subprocess_runs["after"] == subprocess_runs["before"]


def test_version_of_every_console_script(subprocess_runs):
    for tool in console_scripts():
        run, _ = subprocess_runs["runs"][f"version:{tool}"]
        assert run.returncode == 0, run.stderr
        assert run.stdout == f"{tool} {softpool_video.__version__}\n"
        assert run.stderr == ""


@pytest.mark.parametrize(
    "tool",
    sorted(_MAINS)
    + ["tools/train.py", "tools/eval.py", "tools/predict.py", "tools/visualize.py", "tools/benchmark.py"],
)
def test_version_and_help_of_every_tool(tool, tmp_path, capsys, monkeypatch):
    run = _run_in_process(tool, ["--version"], tmp_path, capsys, monkeypatch)
    assert (run.returncode, run.stdout, run.stderr) == (
        0,
        f"{_program(tool)} {softpool_video.__version__}\n",
        "",
    )
    run = _run_in_process(tool, ["--help"], tmp_path, capsys, monkeypatch)
    assert run.returncode == 0 and run.stdout.startswith(f"usage: {_program(tool)}") and run.stderr == ""
    assert "--version" in run.stdout
    assert files_under(tmp_path) == []


def test_every_console_script_is_tested():
    assert set(console_scripts()) == set(_MAINS)
