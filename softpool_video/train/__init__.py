"""Training and evaluation: Hydra configs, the training loop, checkpoints, metrics, DDP helpers.

Entry points: ``softpool-train`` / ``softpool-eval`` (:mod:`softpool_video.train.cli`); in code,
:func:`train` with a config from :func:`compose_config`, and :func:`load_model_from_checkpoint` to get
a trained model back.
"""

from softpool_video.train.checkpoint import load_checkpoint, load_model_from_checkpoint, save_checkpoint
from softpool_video.train.config import ConfigError, compose_config
from softpool_video.train.evaluate import evaluate_checkpoint
from softpool_video.train.trainer import TrainingError, TrainResult, train

__all__ = [
    "ConfigError",
    "TrainResult",
    "TrainingError",
    "compose_config",
    "evaluate_checkpoint",
    "load_checkpoint",
    "load_model_from_checkpoint",
    "save_checkpoint",
    "train",
]
