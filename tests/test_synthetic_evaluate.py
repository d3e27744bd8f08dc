"""Synthetic-set quality: invariants of evaluate_quality, and CAS/FID/precision telling a
perfect generator (real digits of half A) from a useless one (uniform noise)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from synthmix.classifier.resnet import ResNetClassifier
from synthmix.cli import main
from synthmix.commands.quality import resolve_data_config
from synthmix.data import to_uint8_images
from synthmix.errors import DataError
from synthmix.runs.classifier import ClassifierRunConfig, build_classifier
from synthmix.runs.common import DataConfig, PreparedData, prepare_data
from synthmix.synthetic.cas import cas_data, classification_accuracy_score, load_feature_classifier
from synthmix.synthetic.evaluate import (
    NEIGHBOURS_PNG,
    SAMPLES_PNG,
    Reference,
    baseline_distances,
    evaluate_quality,
    stratified_subsample,
)
from synthmix.synthetic.format import write_synthetic_set
from synthmix.training import TrainConfig

DATA_CFG = DataConfig(dataset="digits", image_size=8, resize="resize")
TRAIN = ["--classifier-preset", "tiny", "--max-epochs", "3", "--patience", "3"]


@pytest.fixture(scope="module")
def module_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A private decode cache for the whole module (conftest's is per test)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYNTHMIX_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def digits(module_env: None) -> PreparedData:
    return prepare_data(DATA_CFG)


def _write(path: Path, images: np.ndarray, labels: np.ndarray,
           class_names: tuple[str, ...]) -> Path:
    return write_synthetic_set(path, images, labels, np.arange(len(labels)), class_names,
                               {"sampler": "test"})


@pytest.fixture(scope="module")
def sets(digits: PreparedData, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """'perfect': the DDPM's own training images (half A); 'noise': uniform noise."""
    root = tmp_path_factory.mktemp("sets")
    images = to_uint8_images(digits.diffusion_train[0])  # (N, 8, 8, 1)
    labels = digits.diffusion_train[1].numpy()
    noise = np.random.default_rng(0).integers(0, 256, images.shape, dtype=np.uint8)
    return {"perfect": _write(root / "perfect", images, labels, digits.class_names),
            "noise": _write(root / "noise", noise, labels, digits.class_names)}


@pytest.fixture(scope="module")
def perfect_eval(sets: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
                 ) -> tuple[Path, dict[str, Any]]:
    """The CLI on the perfect set: (out dir, evaluation.json)."""
    out = tmp_path_factory.mktemp("eval") / "perfect"
    rc = main(["evaluate-synthetic", str(sets["perfect"]), "--real", "digits", *TRAIN,
               "--out", str(out), "--no-progress"])
    assert rc == 0
    return out, json.loads((out / "evaluation.json").read_text())


@pytest.fixture(scope="module")
def noise_eval(sets: dict[str, Path], digits: PreparedData, perfect_eval: Any,
               tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    """CAS (synthetic side only) and quality of the noise set, in the perfect run's features."""
    out = tmp_path_factory.mktemp("eval") / "noise"
    ccfg = ClassifierRunConfig(model={"preset": "tiny"},
                               train=TrainConfig(max_epochs=2, patience=2, ema_decay=None,
                                                 grad_clip=None))
    cas = classification_accuracy_score(sets["noise"], DATA_CFG, ccfg, out / "cas",
                                        progress=False, prepared=digits, roles=("synthetic",))
    net = _feature_net(perfect_eval[0], digits)
    from synthmix.synthetic.format import read_synthetic_set

    syn = read_synthetic_set(sets["noise"])
    quality = evaluate_quality(net, to_uint8_images(digits.test[0]), digits.test[1].numpy(),
                               syn.images, syn.labels, digits.class_names, out)
    return cas, quality


def _feature_net(eval_dir: Path, digits: PreparedData) -> ResNetClassifier:
    ccfg = ClassifierRunConfig(model={"preset": "tiny"})
    return load_feature_classifier(eval_dir / "cas" / "real" / "seed-0", ccfg, 1,
                                   len(digits.class_names))


def _untrained_net(seed: int = 0) -> ResNetClassifier:
    torch.manual_seed(seed)
    return build_classifier({"preset": "tiny"}, 1, 10)


# --- evaluate_quality on its own (no training) --------------------------------------------


def test_identical_sets_give_zero_fid_and_full_precision_recall(digits, tmp_path) -> None:
    """A set compared with itself: FID ~ 0, precision = recall = 1 (each point lies in its own
    k-NN ball), and every synthetic image is an exact copy of a reference image."""
    images = to_uint8_images(digits.test[0])
    labels = digits.test[1].numpy()
    q = evaluate_quality(_untrained_net(), images, labels, images, labels, digits.class_names,
                         tmp_path, k=3)
    assert q["feature_space"] == "classifier" and q["n_real"] == q["n_synthetic"] == len(labels)
    assert abs(q["fid"]) < 1e-3 * max(1.0, q["feature_dim"])
    assert abs(q["kid_mean"]) < 1e-3
    assert q["precision"] == 1.0 and q["recall"] == 1.0
    assert all(c["precision"] == 1.0 and c["recall"] == 1.0 for c in q["per_class"].values())
    mem = q["memorisation"]
    # Synthetic images are the reference itself (distance 0); real ones are left out of it.
    assert mem["exact_copies"] == len(labels) and mem["synthetic_nn_distance_mean"] == 0.0
    assert mem["real_nn_distance_min"] > 0.0
    assert mem["fraction_closer_than_any_real"] == 1.0
    assert mem["pixel_nn_same_class"] == 1.0 and mem["feature_nn_same_class"] == 1.0
    assert (tmp_path / SAMPLES_PNG).stat().st_size > 0
    assert (tmp_path / NEIGHBOURS_PNG).stat().st_size > 0
    assert q["files"] == {"samples_per_class": SAMPLES_PNG, "nearest_neighbours": NEIGHBOURS_PNG}
    assert len(q["memorisation_examples"]) == 2 * len(digits.class_names)
    assert {"features", "fid_kid", "precision_recall", "memorisation", "total"} <= set(
        q["timings_s"])
    json.dumps(q)  # JSON-able


def test_subsampling_is_stratified_seeded_and_capped() -> None:
    labels = np.repeat(np.arange(4), [100, 50, 30, 20])
    idx = stratified_subsample(labels, 40, seed=3)
    assert len(idx) == 40 and np.bincount(labels[idx]).tolist() == [20, 10, 6, 4]
    assert np.array_equal(idx, stratified_subsample(labels, 40, seed=3))
    assert not np.array_equal(idx, stratified_subsample(labels, 40, seed=4))
    assert np.array_equal(stratified_subsample(labels, 500, seed=0), np.arange(200))


def test_max_images_caps_both_sides(digits, tmp_path) -> None:
    images = to_uint8_images(digits.test[0])
    labels = digits.test[1].numpy()
    q = evaluate_quality(_untrained_net(), images, labels, images[:200], labels[:200],
                         digits.class_names, tmp_path, max_images=100)
    assert q["n_real"] == q["n_synthetic"] == 100
    assert q["n_real_available"] == len(labels) and q["n_synthetic_available"] == 200


def test_baseline_distance_leaves_each_real_image_out() -> None:
    """Against brute force: nearest *other* reference image, or any when not in it."""
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 256, (30, 4, 4, 1), dtype=np.uint8)
    ref[7] = ref[3]  # a true duplicate still counts, at distance 0
    pixels = torch.from_numpy(ref.reshape(30, -1)).double() / 255
    full = torch.cdist(pixels, pixels)  # (30, 30)
    own = np.array([3, 5, 7])
    got = baseline_distances(ref[own], own, pixels)
    want = [float(full[i][torch.arange(30) != i].min()) for i in own]
    assert torch.allclose(got, torch.tensor(want, dtype=torch.float64))
    assert got[0] == 0.0 and got[1] > 0.0
    queries = rng.integers(0, 256, (5, 4, 4, 1), dtype=np.uint8)
    got = baseline_distances(queries, None, pixels)
    qp = torch.from_numpy(queries.reshape(5, -1)).double() / 255
    assert torch.allclose(got, torch.cdist(qp, pixels).min(dim=1).values)


def test_separate_reference_finds_copies(digits, tmp_path) -> None:
    """Synthetic images copied from the reference are found at distance 0, class kept."""
    ref_x = to_uint8_images(digits.diffusion_train[0])
    ref_y = digits.diffusion_train[1].numpy()
    test_x, test_y = to_uint8_images(digits.test[0]), digits.test[1].numpy()
    ref = Reference(ref_x, ref_y, "half A")
    q = evaluate_quality(_untrained_net(), test_x, test_y, ref_x[:200], ref_y[:200],
                         digits.class_names, tmp_path, reference=ref)
    mem = q["memorisation"]
    assert mem["reference"] == "half A" and mem["n_reference"] == len(ref_y)
    assert mem["exact_copies"] == 200 and mem["synthetic_nn_distance_mean"] == 0.0
    assert mem["real_nn_distance_mean"] > 0.5  # fresh test digits are not in half A
    ex = q["memorisation_examples"][0]
    assert ex["pixel_nn_distance"][0] == 0.0
    assert np.array_equal(ref_x[ex["pixel_nn"][0]], ref_x[:200][ex["synthetic_index"]])


def test_mismatched_shapes_and_too_few_images_are_refused(digits, tmp_path) -> None:
    images = to_uint8_images(digits.test[0])
    labels = digits.test[1].numpy()
    with pytest.raises(DataError, match="real images are"):
        evaluate_quality(_untrained_net(), images, labels, images[:, :4, :4], labels,
                         digits.class_names, tmp_path)
    with pytest.raises(DataError, match="at least 4"):
        evaluate_quality(_untrained_net(), images, labels, images[:3], labels[:3],
                         digits.class_names, tmp_path, k=3)


def test_cas_data_sizes_are_equal_and_stratified(digits) -> None:
    syn = (digits.diffusion_train[0], digits.diffusion_train[1])
    d = cas_data(syn, digits, seed=5)
    n_syn = len(syn[1])
    assert len(d.synthetic_val[1]) == round(0.1 * n_syn)
    assert len(d.synthetic_train[1]) == len(d.real_train[1]) == n_syn - round(0.1 * n_syn)
    counts = np.bincount(d.synthetic_train[1].numpy(), minlength=10)
    real_counts = np.bincount(d.real_train[1].numpy(), minlength=10)
    assert np.abs(counts - real_counts).max() <= 3  # both follow the (near-uniform) classes
    assert 0 < len(d.real_val[1]) <= len(digits.classifier_val[1])


# --- the CLI and CAS (trains three tiny classifiers in all) ---------------------------------


@pytest.mark.slow
def test_perfect_generator_scores_like_real_data(perfect_eval) -> None:
    out, ev = perfect_eval
    cas, q = ev["cas"], ev["quality"]
    real_f1 = cas["real"]["macro_f1"]["mean"]
    syn_f1 = cas["synthetic"]["macro_f1"]["mean"]
    assert real_f1 > 0.6 and syn_f1 > 0.6
    assert abs(real_f1 - syn_f1) < 0.15
    assert cas["gap_real_minus_synthetic"]["macro_f1"]["mean"] == pytest.approx(real_f1 - syn_f1)
    assert cas["synthetic"]["runs"][0]["n_train"] == cas["real"]["runs"][0]["n_train"]
    assert q["feature_space"] == "classifier"
    assert q["precision"] > 0.7 and q["recall"] > 0.7
    # Against half A (the DDPM's training images) every "synthetic" image is a copy.
    mem = q["memorisation"]
    assert "half A" in mem["reference"] and mem["exact_copies"] == q["n_synthetic"]
    assert mem["fraction_closer_than_any_real"] == 1.0
    for name in ("evaluation.json", SAMPLES_PNG, NEIGHBOURS_PNG):
        assert (out / name).stat().st_size > 0
    assert ev["manifest"]["provenance"]["sampler"] == "test"
    assert ev["real_data"]["dataset"] == "digits" and ev["real_data"]["image_size"] == 8
    assert ev["code_version"] and ev["timings_s"]["cas"] > 0


@pytest.mark.slow
def test_noise_scores_near_chance_and_far_in_fid(perfect_eval, noise_eval) -> None:
    _, ev = perfect_eval
    cas, q = noise_eval
    assert cas["synthetic"]["accuracy"]["mean"] < 0.3  # chance is 0.1
    assert cas["synthetic"]["macro_f1"]["mean"] < ev["cas"]["real"]["macro_f1"]["mean"] - 0.3
    assert "real" not in cas and "gap_real_minus_synthetic" not in cas
    perfect = ev["quality"]
    assert q["fid"] > 5 * perfect["fid"] and q["kid_mean"] > perfect["kid_mean"]
    # Few, broad k-NN balls (360 real images, k=3) let some noise in, but far less than digits.
    assert q["precision"] < 0.3 < 0.7 < perfect["precision"]
    mem = q["memorisation"]
    assert mem["exact_copies"] == 0
    assert mem["mean_ratio_synthetic_to_real"] > 1.5  # noise lies far from every digit


@pytest.mark.slow
def test_second_run_reuses_finished_classifiers(perfect_eval, sets, capsys,
                                                forbid_rework) -> None:
    out, ev = perfect_eval
    forbid_rework()  # training a classifier again raises
    rc = main(["evaluate-synthetic", str(sets["perfect"]), "--real", "digits", *TRAIN,
               "--out", str(out), "--no-progress"])
    assert rc == 0
    again = json.loads((out / "evaluation.json").read_text())
    assert again["cas"]["synthetic"]["macro_f1"] == ev["cas"]["synthetic"]["macro_f1"]
    assert again["quality"]["fid"] == pytest.approx(ev["quality"]["fid"])
    printed = capsys.readouterr().out
    assert "CAS" in printed and "FID" in printed
    # --no-cas needs only the real classifier (the feature network): reused as well.
    assert main(["evaluate-synthetic", str(sets["perfect"]), "--real", "digits", *TRAIN,
                 "--out", str(out), "--no-progress", "--no-cas"]) == 0
    no_cas = json.loads((out / "evaluation.json").read_text())
    assert no_cas["cas"] is None and no_cas["quality"]["fid"] == pytest.approx(
        ev["quality"]["fid"])


@pytest.mark.slow
def test_changed_recipe_in_same_out_dir_is_refused(perfect_eval, sets, capsys) -> None:
    out = perfect_eval[0]
    rc = main(["evaluate-synthetic", str(sets["perfect"]), "--real", "digits",
               "--classifier-preset", "tiny", "--max-epochs", "2", "--out", str(out),
               "--no-progress"])
    assert rc == 2
    assert "other data or settings" in capsys.readouterr().err


def test_mismatched_class_names_are_refused(digits, tmp_path, capsys) -> None:
    images = to_uint8_images(digits.test[0][:50])
    labels = digits.test[1][:50].numpy()
    path = _write(tmp_path / "letters", images, labels, tuple("abcdefghij"))
    rc = main(["evaluate-synthetic", str(path), "--real", "digits", "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "class names" in err and "manifest.json" in err and not (path / "evaluation").exists()


def test_mismatched_image_shape_is_refused(digits, tmp_path, capsys) -> None:
    images = to_uint8_images(digits.test[0][:50])
    path = _write(tmp_path / "small", images, digits.test[1][:50].numpy(), digits.class_names)
    rc = main(["evaluate-synthetic", str(path), "--real", "digits", "--image-size", "16",
               "--no-progress"])
    assert rc == 2
    assert "(8, 8, 1)" in capsys.readouterr().err


def test_data_settings_default_to_the_ddpm_runs(tmp_path) -> None:
    """Options not given come from the DDPM run's config.yaml, found via the provenance."""
    run = tmp_path / "ddpm"
    run.mkdir()
    (run / "config.yaml").write_text(
        "data:\n  dataset: digits\n  image_size: 8\n  resize: resize\n  split_seed: 3\n"
        "  diffusion_fraction: 0.5\n  val_fraction: 0.2\n")
    manifest = {"image_shape": [8, 8, 1], "provenance": {"run_dir": str(run)}}
    args = argparse.Namespace(real="digits", data_dir=None, image_size=None, resize=None,
                              channels=None, split_seed=None)
    cfg = resolve_data_config(args, manifest)
    assert (cfg.split_seed, cfg.resize, cfg.val_fraction) == (3, "resize", 0.2)
    args.split_seed = 7
    assert resolve_data_config(args, manifest).split_seed == 7  # the command line wins
    args.real, args.split_seed = "mnist", None  # another data set: the run's data is not used
    args.data_dir, args.resize = str(tmp_path), "pad"
    cfg = resolve_data_config(args, manifest)
    assert (cfg.split_seed, cfg.val_fraction, cfg.image_size) == (0, 0.1, 8)
    # No DDPM run recorded: resize only when the real size differs from the set's.
    args = argparse.Namespace(real="digits", data_dir=None, image_size=16, resize=None,
                              channels=None, split_seed=None)
    assert resolve_data_config(args, {"image_shape": [16, 16, 1],
                                      "provenance": {"run_dir": None}}).resize == "resize"
    args.image_size = None
    assert resolve_data_config(args, {"image_shape": [8, 8, 1],
                                      "provenance": {}}).resize == "pad"


class _PoolNet(torch.nn.Module):
    """Stand-in for a TorchScript Inception-V3: forward(x) -> (B, D, 1, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 5, 3, stride=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3), keepdim=True)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TorchScript, deprecated in torch
@pytest.mark.slow
def test_inception_space_is_reported_separately(digits, tmp_path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "inception.pt"
    torch.jit.save(torch.jit.script(_PoolNet()), str(path))
    images = to_uint8_images(digits.test[0][:60])
    labels = digits.test[1][:60].numpy()
    noise = np.random.default_rng(0).integers(0, 256, images.shape, dtype=np.uint8)
    same = evaluate_quality(_untrained_net(), images, labels, images, labels, digits.class_names,
                            tmp_path, inception=str(path))
    other = evaluate_quality(_untrained_net(), images, labels, noise, labels, digits.class_names,
                             tmp_path, inception=str(path))
    assert same["feature_space"] == "classifier"
    inc = same["inception"]
    assert inc["feature_space"] == "inception" and inc["feature_dim"] == 5
    assert inc["model"] == str(path) and "inception" in same["timings_s"]
    assert abs(inc["fid"]) < 1e-6 < other["inception"]["fid"]
