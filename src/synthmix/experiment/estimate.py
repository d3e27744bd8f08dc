"""How long will a study take here? A short measured run of each stage's unit of work.

`synthmix experiment CONFIG --estimate` builds the plan (every cell's sizes), then times on this
machine and device: a few DDPM training steps at the config's batch, a few guided network
evaluations at the sampling batch, a few classifier training steps, and the test-set forward
pass; it multiplies each by the plan's counts. Training budgets are upper bounds (early stopping
may end a run sooner); a time cap (`max_minutes`) bounds the DDPM. Nothing is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from synthmix.device import autocast, select_device
from synthmix.diffusion.samplers import guided_eps, network_evaluations
from synthmix.diffusion.schedule import NoiseSchedule
from synthmix.experiment.config import StudyConfig
from synthmix.experiment.stages import base_settings, ddpm_config_for
from synthmix.runs.classifier import ClassifierTask, build_classifier, predict_logits
from synthmix.runs.common import prepare_data
from synthmix.runs.ddpm import DDPMTask, build_unet
from synthmix.synthetic.generate import sampling_dtype
from synthmix.training import distributed as dist
from synthmix.training.loop import make_optimizer, planned_steps, train_step
from synthmix.training.precision import choose_amp, precision_name

if TYPE_CHECKING:
    from synthmix.experiment.plan import StudyPlan
    from synthmix.runs.common import PreparedData
    from synthmix.synthetic.dataset import Tensors

WARMUP, TIMED = 2, 4


def _seconds_per_call(fn: Callable[[], Any], device: torch.device) -> float:
    for _ in range(WARMUP):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(TIMED):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / TIMED


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_training(model: torch.nn.Module, task: Any, x: torch.Tensor, y: torch.Tensor,
                   cfg: Any, device: torch.device) -> tuple[float, torch.dtype | None]:
    """Seconds per optimisation step of `model` on batches like (x, y), in the precision the
    run itself would take (`amp: auto` on a bf16 CPU: by the network's FLOPs, as the loop
    decides for one process), and that autocast dtype (None: fp32)."""

    model.to(device).train()
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        x = x.contiguous(memory_format=torch.channels_last)
    opt = make_optimizer(model, cfg)
    amp = choose_amp(cfg.amp, device, model, task, x[:2], y[:2], dist.world_size())
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    step = [0]

    def one() -> None:
        train_step(model, task, x, y, opt, scaler, cfg, step[0], cfg.lr, amp)
        step[0] += 1

    return _seconds_per_call(one, device), amp


def estimate_study(cfg: StudyConfig, base_dir: Path, progress: bool = False) -> dict[str, Any]:
    """Measured rates and the estimated seconds of every stage (upper bounds)."""
    from synthmix.experiment.study import make_plan

    device = select_device(cfg.device)
    world = dist.world_size()
    data = prepare_data(cfg.data)
    plan, real, real_val = make_plan(cfg, data)
    ddpm_row, unet, schedule = _ddpm_training(cfg, base_dir, data, device)
    rows = [ddpm_row, _sampling(cfg, data, unet, schedule, device, world),
            _classifiers(cfg, data, plan, real, real_val, device, world)]
    total = sum(r["seconds"] for r in rows)
    return {"device": str(device), "world_size": world, "plan": plan.summary(), "stages": rows,
            "total_seconds": total,
            "note": "upper bounds: early stopping ends runs sooner; FID/report take seconds"}


def _ddpm_training(cfg: StudyConfig, base_dir: Path, data: PreparedData, device: torch.device,
                   ) -> tuple[dict[str, Any], torch.nn.Module, NoiseSchedule]:
    """The DDPM row: measured optimisation steps times the planned steps of every run (capped
    by max_minutes); also the U-Net and schedule, which the sampling row times."""
    k, (h, _, c) = len(data.class_names), data.image_shape
    dcfg = ddpm_config_for(cfg, base_dir)
    unet = build_unet(dcfg.unet, c, h, k, dcfg.train.seed)
    schedule = NoiseSchedule.from_config(dcfg.schedule).to(device)
    task = DDPMTask(dcfg, schedule, data.diffusion_val, data.class_names, device)
    b = min(dcfg.train.batch_size, len(data.diffusion_train[1]))
    xs, ys = (t[:b].to(device) for t in data.diffusion_train)
    per_step, amp = _time_training(unet, task, xs, ys, dcfg.train, device)
    steps = planned_steps(dcfg.train, len(data.diffusion_train[1]))
    ddpm_s = per_step * steps * cfg.ddpm.runs
    if dcfg.train.max_minutes:
        ddpm_s = min(ddpm_s, dcfg.train.max_minutes * 60 * cfg.ddpm.runs)
    row = {"stage": "DDPM training", "units": f"{cfg.ddpm.runs} x {steps} steps of "
           f"{dcfg.train.batch_size}",
           "rate": f"{b / per_step:.1f} images/s, {precision_name(amp)}",
           "seconds": 0.0 if cfg.ddpm.run_dir else ddpm_s}
    return row, unet, schedule


def _sampling(cfg: StudyConfig, data: PreparedData, unet: torch.nn.Module,
              schedule: NoiseSchedule, device: torch.device, world: int) -> dict[str, Any]:
    """The sampling row: guided network evaluations timed at the sampling batch, times the
    evaluations per image of the sampler, times the images to sample."""
    settings = base_settings(cfg)
    sb, k, (h, _, c) = cfg.synthetic.batch_size, len(data.class_names), data.image_shape
    unet.eval()
    xt = torch.randn(sb, c, h, h, device=device)
    t = torch.full((sb,), schedule.T // 2, device=device)
    yl = torch.arange(sb, device=device) % k
    with torch.inference_mode(), autocast(device, sampling_dtype(device, cfg.synthetic.precision)):
        call = _seconds_per_call(lambda: guided_eps(unet, xt, t, yl, 1.0, k), device)
    per_nfe_image = call / (2 * sb)  # one guided call = 2 network evaluations per image
    nfe = network_evaluations(settings.sampler, settings.steps, schedule.T,
                              1.0 if cfg.synthetic.guidance_scale == "auto"
                              else float(cfg.synthetic.guidance_scale))
    images = sum(_images_to_sample(cfg, k))
    return {"stage": "sampling", "units": f"{images} images x {nfe} network evaluations "
            f"({settings.sampler}-{settings.steps})",
            "rate": f"{1 / (per_nfe_image * nfe):.1f} images/s",
            "seconds": per_nfe_image * nfe * images / world}


def _images_to_sample(cfg: StudyConfig, k: int) -> tuple[int, int, int]:
    """Images of the main synthetic sets, of guidance tuning ("auto") and of the guidance sweep."""
    n_main = 0 if cfg.synthetic.path else cfg.synthetic.sets * cfg.synthetic.n_per_class * k
    n_tune = 0
    if cfg.synthetic.guidance_scale == "auto":
        n_cand = (len(cfg.tune.guidance_scales) * max(1, len(cfg.tune.samplers))
                  * max(1, len(cfg.tune.thresholding)))
        n_tune = n_cand * cfg.tune.n_per_class * k
    n_sweep = len(cfg.guidance_sweep.scales) * (cfg.guidance_sweep.n_per_class
                                                 or cfg.synthetic.n_per_class) * k
    return n_main, n_tune, n_sweep


def _classifiers(cfg: StudyConfig, data: PreparedData, plan: StudyPlan, real: Tensors,
                 real_val: Tensors, device: torch.device, world: int) -> dict[str, Any]:
    """The classifiers row: a cell (and a tuning run) trains at most planned_steps of its
    recipe, then a cell scores the test set."""
    ccfg, k, c = cfg.classifier, len(data.class_names), data.image_shape[2]
    net = build_classifier(ccfg.model, c, k, ccfg.train.seed)
    cb = min(ccfg.train.batch_size, len(real[1]))
    xc, yc = real[0][:cb].to(device), real[1][:cb].to(device)
    per_cstep, camp = _time_training(net, ClassifierTask(ccfg, real_val, device), xc, yc,
                                     ccfg.train, device)
    test_x = data.test[0].to(device)
    eval_s = _seconds_per_call(
        lambda: predict_logits(net, test_x, ccfg.eval_batch_size, ccfg.test_time_flip), device)
    runs = plan.runs()
    steps_total = sum(planned_steps(ccfg.train, r.n_real + r.n_synthetic) for r in runs)
    n_tune = _images_to_sample(cfg, k)[1]
    n_tune_runs = (n_tune // max(cfg.tune.n_per_class * k, 1)) * cfg.tune.seeds
    steps_total += n_tune_runs * planned_steps(ccfg.train, cfg.tune.n_per_class * k)
    return {"stage": "classifiers", "units": f"{len(runs) + n_tune_runs} runs, at most "
            f"{steps_total} steps of {ccfg.train.batch_size}",
            "rate": f"{cb / per_cstep:.0f} images/s, {precision_name(camp)}",
            "seconds": (per_cstep * steps_total + eval_s * len(runs)) / world}


def format_estimate(est: dict[str, Any]) -> str:
    lines = [f"estimated wall time on {est['device']} (world size {est['world_size']}; "
             f"{est['note']}):"]
    for r in est["stages"]:
        lines.append(f"  {r['stage']:<14} {_hms(r['seconds']):>9}   {r['units']}  "
                     f"[{r['rate']}]")
    lines.append(f"  {'total':<14} {_hms(est['total_seconds']):>9}")
    return "\n".join(lines)


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"

