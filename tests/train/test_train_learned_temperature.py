"""A tiny training run with learned temperatures: logged per layer (metrics.csv, metrics.jsonl,
TensorBoard), kept by the checkpoints and rebuilt by load_model_from_checkpoint."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from softpool_video.models.swap import learned_temperatures
from softpool_video.train.checkpoint import load_model_from_checkpoint
from softpool_video.train.config import ConfigError, validate_train_config
from softpool_video.train.trainer import EPOCH_COLUMNS, train


def _tensorboard_scalars(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.mark.parametrize("per_channel", [False, True], ids=["per_layer", "per_channel"])
def test_learned_temperatures_are_logged_and_checkpointed(make_config, per_channel):
    result = train(
        make_config(
            "pooling=soft_learned",
            f"pooling.temperature_per_channel={str(per_channel).lower()}",
            "optim.lr=0.5",  # a large step, so the temperatures visibly move in 2 x 2 steps
            "trainer.epochs=2",
            "trainer.limit_train_batches=2",
        )
    )
    run = result.run_dir
    layers = ["stem.3", "pool"]  # r2plus1d_tiny: the stem max pool and the head pool
    with (run / "metrics.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == (*EPOCH_COLUMNS, *(f"temperature/{name}" for name in layers))

    model, config, _ = load_model_from_checkpoint(result.last_checkpoint)
    assert config["pooling"]["learn_temperature"] is True
    final = learned_temperatures(model)
    assert list(final) == layers
    widths = {name: len(values) for name, values in final.items()}
    # per channel: one value per channel of each pool (more than one); per layer: exactly one
    assert all(w > 1 for w in widths.values()) if per_channel else all(w == 1 for w in widths.values())
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for name, values in final.items():
        mean = sum(values) / len(values)
        assert float(rows[-1][f"temperature/{name}"]) == pytest.approx(mean, rel=1e-6)
        assert lines[-1][f"temperature/{name}"] == pytest.approx(mean, rel=1e-6)
        if per_channel:
            assert lines[-1][f"temperatures/{name}"] == pytest.approx(values, rel=1e-6)
        assert any(abs(v - 1.0) > 1e-4 for v in values), "the temperatures did not train"
    scalars = _tensorboard_scalars(run)
    for name in layers:
        assert scalars[f"epoch/temperature/{name}"] == pytest.approx(
            [float(row[f"temperature/{name}"]) for row in rows], rel=1e-6
        )

    # the state dict holds them and a strict load into the config's model works
    state = torch.load(result.last_checkpoint, weights_only=True)
    keys = sorted(k for k in state["model"] if k.endswith("log_temperature"))
    assert keys == sorted(f"{name}.log_temperature" for name in layers)
    for name in layers:
        torch.testing.assert_close(
            state["model"][f"{name}.log_temperature"].exp().reshape(-1), torch.tensor(final[name])
        )


def test_fixed_temperature_runs_log_no_temperature_columns(make_config):
    result = train(make_config("trainer.epochs=1", "trainer.limit_train_batches=1"))
    with (result.run_dir / "metrics.csv").open(newline="") as handle:
        assert tuple(next(csv.DictReader(handle))) == EPOCH_COLUMNS


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ("pooling=max", "pooling.learn_temperature=true"),
            "pooling.learn_temperature=true needs pooling.pool=soft",
        ),
        (("pooling.temperature_per_channel=true",), "needs pooling.learn_temperature=true"),
        (("pooling.learn_temperature=yes",), "pooling.learn_temperature='yes' must be true or false"),
    ],
)
def test_bad_temperature_settings_name_the_key(make_config, overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate_train_config(make_config(*overrides))
