"""synthmix: class-conditional DDPM synthetic data and how much it is worth to a classifier."""

__version__ = "0.1.0"
