"""Classification accuracy score (CAS, Ravuri & Vinyals 2019) of a synthetic set.

One classifier recipe is trained on the synthetic set and one on as many real images of the
classifier half (which the DDPM never saw); both are tested on the real test set.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from synthmix.errors import ConfigError, DataError

if TYPE_CHECKING:
    from synthmix.classifier.resnet import ResNetClassifier
    from synthmix.runs.classifier import ClassifierRunConfig
    from synthmix.runs.common import DataConfig, PreparedData
    from synthmix.synthetic.format import SyntheticSet

log = logging.getLogger(__name__)

CAS_SYN_VAL_FRACTION = 0.1
Tensors = tuple[torch.Tensor, torch.Tensor]


def check_compatible(syn: SyntheticSet, data: PreparedData, real_name: str) -> None:
    """The real data set must have the set's class names (in order) and image shape."""
    if tuple(syn.class_names) != tuple(data.class_names):
        raise DataError(
            f"class names {list(syn.class_names)} differ from those of {real_name!r} "
            f"{list(data.class_names)}",
            path=syn.path / "manifest.json",
            hint="evaluate a set against the data set its DDPM was trained on",
        )
    shape = tuple(int(d) for d in syn.manifest["image_shape"])
    if shape != data.image_shape:
        raise DataError(
            f"images are {shape} (H, W, C) but {real_name!r} prepared is {data.image_shape}",
            path=syn.path / "manifest.json",
            hint="set --image-size/--channels/--resize to how the DDPM's data was prepared",
        )


def set_fingerprint(syn: SyntheticSet) -> str:
    """sha256 over the shard checksums: names the set's exact content."""
    import hashlib

    shas = "".join(str(s.get("sha256")) for s in syn.manifest["shards"])
    return hashlib.sha256(shas.encode()).hexdigest()


@dataclass
class CasData:
    """Training and validation images of one seed's two CAS classifiers."""

    synthetic_train: Tensors
    synthetic_val: Tensors
    real_train: Tensors
    real_val: Tensors


def cas_data(syn: Tensors, data: PreparedData, seed: int) -> CasData:
    """Synthetic: 10% of the set held out (stratified); real: as many training images from the
    classifier half, validated on the same share of its validation split (as the mixes do)."""
    from synthmix.data.splits import stratified_prefix

    sx, sy = syn
    (rx, ry), (vx, vy) = data.classifier_train, data.classifier_val
    val_mask = np.zeros(len(sy), dtype=bool)
    val_mask[stratified_prefix(sy.numpy(), CAS_SYN_VAL_FRACTION, seed)] = True
    pool = np.flatnonzero(~val_mask)
    n = min(len(pool), len(ry))  # equal sizes; only a huge set is cut to the real pool's size
    syn_idx = pool[stratified_prefix(sy.numpy()[pool], None, seed + 1, count=n)]
    real_idx = stratified_prefix(ry.numpy(), None, seed + 2, count=n)
    real_val_idx = stratified_prefix(vy.numpy(), n / len(ry), seed + 3)
    if n < 1 or len(real_val_idx) < 1:
        raise DataError(f"CAS needs training and validation images; got {n} and "
                        f"{len(real_val_idx)} (synthetic set of {len(sy)}, real pool {len(ry)})")
    val_t = torch.as_tensor(val_mask)

    def take(x: torch.Tensor, y: torch.Tensor, idx: np.ndarray) -> Tensors:
        i = torch.as_tensor(idx, dtype=torch.int64)
        return x[i], y[i]

    return CasData((sx[torch.as_tensor(syn_idx)], sy[torch.as_tensor(syn_idx)]),
                   (sx[val_t], sy[val_t]), take(rx, ry, real_idx), take(vx, vy, real_val_idx))


def _cas_run(role: str, seed: int, cfg: ClassifierRunConfig, train: Tensors, val: Tensors,
             data: PreparedData, source: str, run_dir: Path, progress: bool) -> dict[str, Any]:
    """Train and test one CAS classifier; a finished run of the same recipe is reused."""
    from synthmix.config import to_dict
    from synthmix.files import atomic_write_json
    from synthmix.runs.classifier import train_classifier
    from synthmix.runs.common import write_run_info

    ccfg = replace(cfg, train=replace(cfg.train, seed=seed))
    recipe = to_dict(replace(ccfg, device="auto", num_threads=None))
    identity = json.loads(json.dumps({"role": role, "seed": seed, "source": source,
                                      "n_train": len(train[1]), "n_val": len(val[1]),
                                      "recipe": recipe}))
    id_path = run_dir / "cas_run.json"
    if id_path.is_file() and json.loads(id_path.read_text()) != identity:
        raise ConfigError("this CAS run was made with other data or settings", path=run_dir,
                          hint="choose another --out, or delete the directory to redo it")
    result_path = run_dir / "test_metrics.json"
    if result_path.is_file():
        log.info("CAS %s seed %d: reusing %s", role, seed, run_dir)
        metrics = dict(json.loads(result_path.read_text()))
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(id_path, identity)
        write_run_info(run_dir, ccfg, {"kind": "cas", "role": role})
        metrics = train_classifier(ccfg, train, val, data.test, data.class_names, run_dir,
                                   resume=(run_dir / "checkpoints").is_dir(), progress=progress)
    keep = ("macro_f1", "accuracy", "epochs", "best_epoch", "train_seconds")
    return {"seed": seed, **{key: metrics.get(key) for key in keep},
            "n_train": identity["n_train"], "n_val": identity["n_val"]}


def _real_source(data_cfg: DataConfig) -> str:
    return (f"{data_cfg.dataset} classifier half, split seed {data_cfg.split_seed}, "
            f"size {data_cfg.image_size} ({data_cfg.resize}), channels {data_cfg.channels}")


def classification_accuracy_score(
    syn_set_path: str | Path,
    data_cfg: DataConfig,
    classifier_cfg: ClassifierRunConfig,
    out_dir: Path,
    *,
    seeds: int = 1,
    progress: bool = True,
    prepared: PreparedData | None = None,
    synthetic: SyntheticSet | None = None,
    roles: Sequence[str] = ("synthetic", "real"),
) -> dict[str, Any]:
    """CAS: one recipe trained on the synthetic set vs on as many real images, both tested on
    the real test set; macro-F1 and accuracy as mean ± std over `seeds`, and the gap.

    Run directories: out_dir/<role>/seed-<k>. `roles=("real",)` trains only the real side.
    """
    from synthmix.data import to_model_tensor
    from synthmix.metrics.classification import mean_std
    from synthmix.runs.common import prepare_data
    from synthmix.seeding import derive_seed
    from synthmix.synthetic.format import read_synthetic_set

    start = time.perf_counter()
    if seeds < 1:
        raise ConfigError(f"seeds must be >= 1, got {seeds}")
    syn = synthetic if synthetic is not None else read_synthetic_set(syn_set_path)
    data = prepared if prepared is not None else prepare_data(data_cfg)
    check_compatible(syn, data, data_cfg.dataset)
    syn_t = (to_model_tensor(syn.images, None), torch.as_tensor(syn.labels, dtype=torch.int64))
    sources = {"synthetic": f"synthetic set {set_fingerprint(syn)}",
               "real": _real_source(data_cfg)}
    runs: dict[str, list[dict[str, Any]]] = {role: [] for role in roles}
    for s in range(seeds):
        split = cas_data(syn_t, data, derive_seed(data_cfg.split_seed, s) % 2**32)
        sets = {"synthetic": (split.synthetic_train, split.synthetic_val),
                "real": (split.real_train, split.real_val)}
        for role in roles:
            run_dir = Path(out_dir) / role / f"seed-{s}"
            entry = _cas_run(role, s, classifier_cfg, *sets[role], data, sources[role],
                             run_dir, progress)
            runs[role].append({**entry, "run_dir": f"{role}/seed-{s}"})
    result: dict[str, Any] = {"seeds": seeds, "n_test": len(data.test[1])}
    for role, entries in runs.items():
        result[role] = {m: mean_std([e[m] for e in entries]) for m in ("macro_f1", "accuracy")}
        result[role]["runs"] = entries
        result[role]["train_seconds"] = round(sum(e["train_seconds"] or 0 for e in entries), 2)
    if "synthetic" in runs and "real" in runs:
        result["gap_real_minus_synthetic"] = {m: mean_std(
            [r[m] - y[m] for r, y in zip(runs["real"], runs["synthetic"], strict=True)])
            for m in ("macro_f1", "accuracy")}
        # Ravuri & Vinyals' CAS is the accuracy; the ratio puts it on the real recipe's scale.
        result["cas"] = result["synthetic"]["accuracy"]["mean"]
        result["cas_ratio_to_real"] = result["cas"] / max(result["real"]["accuracy"]["mean"],
                                                          1e-12)
    result["feature_run_dir"] = "real/seed-0"
    result["wall_seconds"] = round(time.perf_counter() - start, 2)
    return result


def load_feature_classifier(run_dir: Path, classifier_cfg: ClassifierRunConfig,
                            in_channels: int, num_classes: int) -> ResNetClassifier:
    """The best weights of a finished classifier run, to serve as the feature network."""
    from synthmix.runs.classifier import build_classifier
    from synthmix.training.checkpoint import find_checkpoint, load_weights

    net = build_classifier(classifier_cfg.model, in_channels, num_classes)
    best = find_checkpoint(Path(run_dir) / "checkpoints" / "best")
    if best is None:
        raise ConfigError("classifier run has no best checkpoint", path=run_dir)
    load_weights(best / "model.safetensors", net)
    return net.eval()


def cas_classifier_config(preset: str, max_epochs: int, patience: int,
                          device: str = "auto",
                          steps_per_epoch: int | None = None) -> ClassifierRunConfig:
    """The fixed CAS classifier recipe: the study's optimiser, no EMA or clipping.
    `steps_per_epoch` fixes an epoch's length (None: one pass over the training images), so a
    judge on a few hundred images still trains for a set number of steps."""
    from synthmix.runs.classifier import ClassifierRunConfig
    from synthmix.training import TrainConfig

    if max_epochs < 1 or patience < 1 or (steps_per_epoch is not None and steps_per_epoch < 1):
        raise ConfigError("--max-epochs, --patience and --steps-per-epoch must be >= 1")
    train = TrainConfig(max_epochs=max_epochs, patience=patience, ema_decay=None, grad_clip=None,
                        steps_per_epoch=steps_per_epoch)
    return ClassifierRunConfig(model={"preset": preset}, train=train, device=device)
