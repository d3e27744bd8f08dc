"""Classification metrics (macro-F1, mean +- std) and generative metrics (FID, KID, P/R)."""

from synthmix.metrics.classification import classification_metrics, format_mean_std, mean_std

__all__ = ["classification_metrics", "format_mean_std", "mean_std"]
