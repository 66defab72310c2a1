"""softpool-demo end to end on the tiny dataset (the full demo runs for minutes; see the README)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from softpool_video import demo


@pytest.mark.slow
def test_demo_trains_tests_and_prints_the_results(synthetic_root, tiny_overrides, tmp_path, capsys):
    overrides = tiny_overrides(synthetic_root, tmp_path, "trainer.epochs=2", "eval.test_num_clips=3")
    assert demo.main(overrides) == 0
    out = capsys.readouterr().out
    assert "SoftPool demo: results on the synthetic test split" in out
    assert re.search(r"\| video top-1 +\| \d+\.\d%", out)
    assert "8 (3 clips x 3 crops = 72 views)" in out  # the test views of eval.test_num_*
    for label in ("confusion matrix", "training curves"):
        path = re.search(rf"{label} +(\S+\.png)", out).group(1)
        assert Path(path).read_bytes()[:4] == b"\x89PNG"
    run_dirs = list((tmp_path / "demo").iterdir())
    assert len(run_dirs) == 1 and (run_dirs[0] / "eval_test" / "summary.json").is_file()


# experiment=pooling_comparison: tests/train/test_train_comparison.py


def test_demo_rejects_bad_arguments(capsys):
    assert demo.main(["fast"]) == 2
    assert "'fast' is not an override: write key=value" in capsys.readouterr().err
    assert demo.main(["experiment=nope"]) == 2
    err = capsys.readouterr().err
    assert "experiment=nope: no such experiment config" in err and "pooling_comparison" in err
    assert len(err.splitlines()) == 1
