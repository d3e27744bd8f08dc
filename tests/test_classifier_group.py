"""Classifiers trained stacked (runs/classifier_group.py) equal the same classifiers trained
alone: seeds, data orders, augmentation, early stopping, best checkpoints, results; and a
killed group resumes to the same results."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from synthmix.runs import classifier as classifier_module
from synthmix.runs import classifier_group
from synthmix.runs.classifier import (
    AugmentConfig,
    ClassifierRunConfig,
    ClassifierTask,
    build_classifier,
)
from synthmix.runs.classifier_group import train_classifier_group, why_not_stacked
from synthmix.training import TrainConfig
from synthmix.training.loop import State

Tensors = tuple[torch.Tensor, torch.Tensor]
CLASSES = tuple(str(i) for i in range(10))
SIZES = (120, 160, 200)  # each member its own training-set size


def _digits() -> Tensors:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 8.0 - 1.0  # (N, 1, 8, 8)
    # 16x16 as in the study: at 8x8 the last stage's attention sees one position, its q/k
    # gradients are float noise, and Adam turns noise into full steps (chaos, not a test).
    x = torch.nn.functional.interpolate(x, size=16, mode="bilinear")  # (N, 1, 16, 16)
    return x, torch.tensor(d.target)


def _recipe(seed: int) -> ClassifierRunConfig:
    train = TrainConfig(max_epochs=3, patience=1, batch_size=16, lr=1e-3, optimizer="adamw",
                        steps_per_epoch=4, ema_decay=None, grad_clip=None, amp="off", seed=seed)
    # Test-time flip on (flips do not keep digits' labels: this is about stacked equalling
    # alone, not about scores), so both paths must score with it.
    return ClassifierRunConfig(model={"preset": "tiny"}, train=train, label_smoothing=0.1,
                               augment=AugmentConfig(random_crop_padding=1),
                               test_time_flip=True, device="cpu")


def _setup() -> tuple[list[ClassifierRunConfig], list[tuple[Tensors, Tensors]], Tensors]:
    x, y = _digits()
    cfgs, data, start = [], [], 0
    for k, n in enumerate(SIZES):
        train = (x[start : start + n], y[start : start + n])
        val = (x[start + n : start + n + 60], y[start + n : start + n + 60])
        start += n + 60
        cfgs.append(_recipe(seed=k))
        data.append((train, val))
    return cfgs, data, (x[-300:], y[-300:])


def _run(cfgs: list[ClassifierRunConfig], data: list[tuple[Tensors, Tensors]], test: Tensors,
         root: Path) -> list[dict]:
    dirs = [root / f"cell{k}" for k in range(len(cfgs))]
    return train_classifier_group(cfgs, data, test, CLASSES, dirs, progress=False)


def _best(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "checkpoints" / "best" / "model.safetensors"))


@pytest.fixture(scope="module")
def alone_and_stacked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list, list]:
    cfgs, data, test = _setup()
    alone_dir, stacked_dir = tmp_path_factory.mktemp("alone"), tmp_path_factory.mktemp("stack")
    alone = [_run([c], [d], test, alone_dir / f"a{k}")[0]
             for k, (c, d) in enumerate(zip(cfgs, data, strict=True))]
    stacked = _run([replace(c, group_size=3) for c in cfgs], data, test, stacked_dir)
    return alone_dir, stacked_dir, alone, stacked


def _assert_same(a: dict, b: dict) -> None:
    assert a["test_time_flip"] is b["test_time_flip"] is True  # both scored with it
    for key in ("epochs", "steps", "best_epoch", "stop_reason", "n_train", "n_val"):
        assert a[key] == b[key], key
    # Adam (eps 1e-8) turns float-order noise in near-zero gradients (a convolution before
    # BatchNorm) into lr-sized steps: stacked and alone agree to ~1e-6 after one epoch and
    # drift to ~1e-4 by the third, as any change of convolution algorithm would.
    assert a["best_val_loss"] == pytest.approx(b["best_val_loss"], rel=1e-3)
    assert a["macro_f1"] == pytest.approx(b["macro_f1"], abs=0.02)


def test_stacked_classifiers_equal_each_trained_alone(alone_and_stacked: tuple) -> None:
    alone_dir, stacked_dir, alone, stacked = alone_and_stacked
    # The members stop at different epochs, so the stack sheds members mid-run.
    assert len({m["epochs"] for m in stacked}) > 1
    for k, (a, s) in enumerate(zip(alone, stacked, strict=True)):
        _assert_same(a, s)
        wa, ws = _best(alone_dir / f"a{k}" / "cell0"), _best(stacked_dir / f"cell{k}")
        for name, t in wa.items():  # the same weights, up to that noise
            assert float((ws[name].float() - t.float()).abs().mean()) < 1e-3, name
        history_a = (alone_dir / f"a{k}" / "cell0" / "metrics.jsonl").read_text().splitlines()
        history_s = (stacked_dir / f"cell{k}" / "metrics.jsonl").read_text().splitlines()
        val_a = [json.loads(r)["val_loss"] for r in history_a]
        val_s = [json.loads(r)["val_loss"] for r in history_s]
        assert val_s == pytest.approx(val_a, rel=1e-3)
        assert val_s[0] == pytest.approx(val_a[0], rel=1e-4)


def test_a_killed_group_resumes_to_the_same_results(alone_and_stacked: tuple,
                                                    tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, alone, _ = alone_and_stacked
    cfgs, data, test = _setup()
    cfgs = [replace(c, group_size=3) for c in cfgs]
    real_end_epoch = classifier_group._end_epoch
    calls = {"n": 0}

    def end_epoch_then_die(*args: object, **kwargs: object) -> None:
        if calls["n"] == 4:  # epoch 2: member 0 saved it, members 1 and 2 did not
            raise KeyboardInterrupt
        calls["n"] += 1
        real_end_epoch(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(classifier_group, "_end_epoch", end_epoch_then_die)
    with pytest.raises(KeyboardInterrupt):
        _run(cfgs, data, test, tmp_path)
    monkeypatch.setattr(classifier_group, "_end_epoch", real_end_epoch)
    assert not (tmp_path / "cell0" / "test_metrics.json").exists()
    for a, s in zip(alone, _run(cfgs, data, test, tmp_path), strict=True):
        _assert_same(a, s)


def test_stacked_members_draw_the_augmentation_each_would_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Cutout included. Compared on the augmented batches, not on weights: with cutout, the
    # float-order noise above reaches 3e-4 of the first epoch's validation loss.
    cfgs, data, test = _setup()
    one_epoch = replace(cfgs[0].train, max_epochs=1)
    cfgs = [replace(c, train=replace(one_epoch, seed=c.train.seed),
                    augment=AugmentConfig(random_crop_padding=1, horizontal_flip=True,
                                          cutout=4)) for c in cfgs[:2]]
    batches: dict[str, list[torch.Tensor]] = {"alone": [], "stacked": []}

    def recording(key: str, module: object) -> None:
        real = module.augment  # type: ignore[attr-defined]

        def augment(x: torch.Tensor, cfg: AugmentConfig, rng: object) -> torch.Tensor:
            assert cfg.cutout == 4
            batches[key].append(real(x, cfg, rng))
            return batches[key][-1]

        monkeypatch.setattr(module, "augment", augment)

    recording("alone", classifier_module)
    _run(cfgs[:1], data[:1], test, tmp_path / "alone")
    recording("stacked", classifier_group)
    _run([replace(c, group_size=2) for c in cfgs], data[:2], test, tmp_path / "stacked")
    alone, stacked = batches["alone"], batches["stacked"][0::2]  # member 0 of each step
    assert len(alone) == len(stacked) == one_epoch.steps_per_epoch
    for a, s in zip(alone, stacked, strict=True):
        assert torch.equal(a, s)


def test_recipes_that_cannot_stack_say_why() -> None:
    model = build_classifier({"preset": "tiny"}, 1, 10)
    ok = _recipe(0)
    assert why_not_stacked(ok, model) is None
    no_spe = replace(ok, train=replace(ok.train, steps_per_epoch=None))
    assert "steps_per_epoch" in str(why_not_stacked(no_spe, model))
    ema = replace(ok, train=replace(ok.train, ema_decay=0.99))
    assert "EMA" in str(why_not_stacked(ema, model))
    dropout = build_classifier({"preset": "tiny", "dropout": 0.2}, 1, 10)
    assert "dropout" in str(why_not_stacked(ok, dropout))


def test_one_stacked_step_gives_each_member_its_own_gradient_and_statistics() -> None:
    cfgs, data, _ = _setup()
    models = [build_classifier({"preset": "tiny"}, 1, 10, seed=k) for k in range(2)]
    alone = [copy.deepcopy(m).train() for m in models]
    members = [classifier_group.Member(m, ClassifierTask(cfgs[k], data[k][1], torch.device("cpu")),
                                       data[k][0], cfgs[k].train, Path("."), State())
               for k, m in enumerate(models)]
    stack = classifier_group._Stack(members, None)
    x = torch.stack([data[k][0][0][:16] for k in range(2)])  # (K, B, 1, 16, 16)
    y = torch.stack([data[k][0][1][:16] for k in range(2)])  # (K, B)
    losses = stack.step(x, y, lr=0.0)  # lr 0: the gradients stay to be read, weights unchanged
    for k, model in enumerate(alone):
        loss = F.cross_entropy(model(x[k]), y[k], label_smoothing=0.1)
        loss.backward()
        assert losses[k].item() == pytest.approx(loss.item(), rel=1e-6)
        for name, p in model.named_parameters():
            assert p.grad is not None
            torch.testing.assert_close(stack.params[name].grad[k], p.grad, rtol=1e-4, atol=1e-6)
        for name, b in model.named_buffers():
            torch.testing.assert_close(stack.buffers[name][k], b)


def test_a_study_trains_its_cells_in_groups(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from test_study import TINY_STUDY

    import synthmix.experiment.cells as cells
    from synthmix.config import load_config
    from synthmix.experiment.config import StudyConfig
    from synthmix.experiment.study import run_study

    (tmp_path / "tiny.yaml").write_text(TINY_STUDY)
    cfg = load_config(StudyConfig, tmp_path / "tiny.yaml", [
        "guidance_sweep.scales=[]", "quality.enabled=false", "seeds=1",
        "classifier.group_size=3", "classifier.train.steps_per_epoch=2"])
    groups: list[int] = []
    real = cells.train_classifier_group

    def spy(cfgs: list, *args: object, **kwargs: object) -> list[dict]:
        groups.append(len(cfgs))
        return real(cfgs, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cells, "train_classifier_group", spy)
    results = run_study(cfg, tmp_path / "s", progress=False)
    assert groups == [3, 2]  # 5 cells, 3 at a time
    assert len(results["table"]) == 5
    for summary in (tmp_path / "s" / "classifiers").rglob("train_summary.json"):
        assert json.loads(summary.read_text())["steps"] % 2 == 0
    assert len(list((tmp_path / "s").rglob("test_metrics.json"))) == 5
    # Every single-network stage is set against the machine's limit (experiment/flops.py).
    stages = json.loads((tmp_path / "s" / "stages.json").read_text())
    for name in ("ddpm", "synthetic-set0", "classifiers"):
        assert stages[name]["gflop_per_image"] > 0 and stages[name]["achieved_gflops"] > 0
        assert "peak_assumption" in stages[name]
