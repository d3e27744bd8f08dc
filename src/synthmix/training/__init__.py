"""The training loop shared by the DDPM and the classifier: epochs, early stopping, EMA,
mixed precision, checkpoints that resume exactly, and DDP under torchrun."""

from synthmix.training.loop import TrainConfig, TrainResult, fit

__all__ = ["TrainConfig", "TrainResult", "fit"]
