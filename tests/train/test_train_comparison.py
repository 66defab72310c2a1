"""Multi-seed pooling comparison: the t quantiles, the paired statistics (by hand), the table and
plot, and softpool-demo experiment=pooling_comparison end to end on the tiny dataset."""

from __future__ import annotations

import csv
import json
import math

import pytest
from omegaconf import OmegaConf

from softpool_video import demo
from softpool_video.train.comparison import paired_summary, plot_comparison, summary_table, t_critical_975


@pytest.mark.parametrize(("df", "value"), [(1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (30, 2.042)])
def test_t_quantiles_from_the_printed_table(df, value):
    assert t_critical_975(df) == value


def test_t_quantiles_between_table_entries_and_against_scipy():
    # 35 lies between 30 (2.042) and 40 (2.021); interpolation in 1/df: weight (1/30-1/35)/(1/30-1/40) = 4/7
    assert t_critical_975(35) == pytest.approx(2.042 - 4 / 7 * 0.021, abs=1e-12)
    assert 1.960 < t_critical_975(10_000) < 1.961
    stats = pytest.importorskip("scipy.stats")  # an independent reference where installed
    for df in [*range(1, 31), 35, 45, 50, 80, 100, 200, 1000]:
        assert t_critical_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1.5e-3), df
    with pytest.raises(ValueError, match="df must be an int >= 1"):
        t_critical_975(0)


def test_paired_summary_by_hand():
    values = {"soft": {0: 80.0, 1: 85.0, 2: 90.0}, "max": {0: 82.0, 1: 85.0, 2: 95.0}}
    soft, mx = paired_summary(values)
    assert (soft.kind, soft.mean, soft.std, soft.differences, soft.ci95) == ("soft", 85.0, 5.0, None, None)
    assert mx.differences == (2.0, 0.0, 5.0)
    assert mx.mean_difference == pytest.approx(7 / 3)
    # sample sd of (2, 0, 5): sqrt(((2-7/3)^2 + (7/3)^2 + (5-7/3)^2) / 2) = sqrt(19/3)
    half = 4.303 * math.sqrt(19 / 3) / math.sqrt(3)
    assert mx.ci95 == pytest.approx((7 / 3 - half, 7 / 3 + half))
    # max: mean 262/3, squared deviations (16/3)^2 + (7/3)^2 + (23/3)^2 = 834/9, / 2 -> sd sqrt(139/3)
    assert mx.mean == pytest.approx(262 / 3) and mx.std == pytest.approx(math.sqrt(139 / 3))


def test_pairs_are_taken_by_seed_not_by_position():
    values = {"soft": {3: 50.0, 1: 40.0}, "avg": {1: 41.0, 3: 55.0, 7: 99.0}}
    soft, avg = paired_summary(values)
    assert soft.seeds == (1, 3) and avg.seeds == (1, 3, 7)
    assert avg.differences == (1.0, 5.0)  # seed 7 has no partner
    (single,) = paired_summary({"soft": {0: 1.0}})
    assert single.std == 0.0
    assert paired_summary({"soft": {0: 1.0}, "max": {0: 3.0}})[1].ci95 is None  # one pair: no interval


def test_table_and_plot(tmp_path):
    summaries = paired_summary({"soft": {0: 80.0, 1: 86.0}, "soft_learned": {0: 84.0, 1: 85.0}})
    header, rows = summary_table(summaries)
    assert header[4] == "Δ vs soft per seed"
    assert rows[0] == ["soft", "2", "83.0 ± 4.2", "80.0, 86.0", "(reference)", ""]
    assert rows[1][:5] == ["soft_learned", "2", "84.5 ± 0.7", "84.0, 85.0", "+4.0, -1.0"]
    # mean 1.5, sd of (4, -1) = sqrt(12.5), t(1) = 12.706: half width 12.706 * sqrt(12.5) / sqrt(2) = 31.8
    assert rows[1][5] == "+1.5 [-30.3, +33.3]"
    path = plot_comparison(summaries, tmp_path / "plot.png", "title")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


@pytest.mark.slow
def test_pooling_comparison_with_seeds_writes_paired_tables_and_a_plot(
    synthetic_root, tiny_overrides, tmp_path, capsys
):
    out = tmp_path / "comparison"
    overrides = [
        "experiment=pooling_comparison",
        *tiny_overrides(
            synthetic_root,
            tmp_path,
            "trainer.epochs=1",
            "eval.test_num_clips=1",
            "eval.test_num_crops=1",
            f"comparison.output_dir={out}",
            "comparison.seeds=2",
            "comparison.poolings=[soft,soft_learned,max]",
        ),
    ]
    assert demo.main(overrides) == 0
    with (out / "comparison.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    kinds = ["soft", "soft_learned", "max"]
    assert [(row["pooling"], row["seed"]) for row in rows] == [(k, s) for s in ("0", "1") for k in kinds]
    for row in rows:  # every run used its seed and the same budget
        config = OmegaConf.load(out / row["pooling"] / f"seed{row['seed']}" / "config.yaml")
        assert config.seed == int(row["seed"]) and config.trainer.epochs == 1
        assert config.pooling.learn_temperature == (row["pooling"] == "soft_learned")
        assert bool(row["learned_temperature"]) == (row["pooling"] == "soft_learned")
    summary = json.loads((out / "comparison.json").read_text())
    by_kind = {s["kind"]: s for s in summary["summaries"]}
    top1 = {(r["pooling"], int(r["seed"])): float(r["video_top1"]) for r in rows}
    for kind in ("soft_learned", "max"):
        expected = [top1[kind, s] - top1["soft", s] for s in (0, 1)]
        assert by_kind[kind]["differences"] == pytest.approx(expected, abs=0.01)
    table = (out / "comparison.md").read_text()
    assert "mean ± std" in table and "Δ vs soft per seed" in table and "95% CI" in table
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    assert "Pooling comparison" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("comparison.seeds=0", "comparison.seeds=0 must be an integer >= 1"),
        ("comparison.poolings=[soft,nope]", "comparison.poolings: 'nope' is not a pooling config"),
        ("comparison.poolings=[soft,soft]", "must list distinct pooling configs"),
    ],
)
def test_bad_comparison_settings_exit_2_and_write_nothing(
    synthetic_root, tiny_overrides, tmp_path, capsys, override, message
):
    out = tmp_path / "comparison"
    overrides = [
        "experiment=pooling_comparison",
        *tiny_overrides(synthetic_root, tmp_path, f"comparison.output_dir={out}", override),
    ]
    assert demo.main(overrides) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() and not any(tmp_path.glob("**/checkpoints"))
