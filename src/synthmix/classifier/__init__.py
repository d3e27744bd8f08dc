"""The image classifier of SPEC §4 (a ResNet with attention layers)."""

from synthmix.classifier.resnet import (
    CLASSIFIER_PRESETS,
    ClassifierConfig,
    ResNetClassifier,
    classifier_config,
    count_parameters,
)

__all__ = [
    "CLASSIFIER_PRESETS",
    "ClassifierConfig",
    "ResNetClassifier",
    "classifier_config",
    "count_parameters",
]
