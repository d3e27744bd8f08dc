"""The diffusers side of the benchmark: a `UNet2DModel` built to match a synthmix U-Net, a weight
copy that proves the match (same function, not just the same parameter count), and the
scheduler loops written the way diffusers' own pipelines write classifier-free guidance.

Only benchmarks/ imports diffusers; the synthmix package never does (`pip install .[bench]`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from synthmix.diffusion.schedule import NoiseSchedule
from synthmix.diffusion.unet import UNet, UNetConfig

# synthmix's architecture knobs that UNet2DModel can express. UNet2DModel always down-samples
# with a strided 3x3 conv and up-samples with nearest + 3x3 conv; the synthmix presets use
# average pooling and a 4x4 transposed conv instead, so the "matched" synthmix network of the
# benchmark switches to conv/nearest (same parameters, same function as UNet2DModel).
MATCHED_OVERRIDES: dict[str, Any] = {"downsample": "conv", "upsample": "nearest"}


def diffusers_unet(cfg: UNetConfig) -> Any:
    """A diffusers UNet2DModel with the same widths, levels, blocks, attention, norm and
    conditioning as the synthmix `UNet(cfg)` built with MATCHED_OVERRIDES."""
    from diffusers import UNet2DModel
    from diffusers.models.attention_processor import Attention

    widths = [cfg.base_channels * m for m in cfg.channel_mults]
    res = [cfg.image_size >> i for i in range(len(widths))]
    attn = [r in cfg.attention_resolutions for r in res]
    attn_widths = [w for w, a in zip(widths, attn) if a] + [widths[-1]]  # + the middle block
    if any(w % cfg.num_groups for w in widths):
        raise ValueError(f"diffusers needs one GroupNorm group count dividing every width {widths}")
    model: Any = UNet2DModel(
        sample_size=cfg.image_size,
        in_channels=cfg.in_channels,
        out_channels=cfg.in_channels,
        block_out_channels=tuple(widths),
        layers_per_block=cfg.num_res_blocks,
        down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn),
        up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)),
        # any head dim that divides every attention width; the head count is set below
        attention_head_dim=min(attn_widths) // cfg.num_heads,
        norm_num_groups=cfg.num_groups,
        attn_norm_num_groups=cfg.num_groups,  # else the scale-shift mid-block has no attn norm
        norm_eps=1e-5,
        dropout=cfg.dropout,
        resnet_time_scale_shift="scale_shift",  # synthmix's FiLM: GN(h) * (1 + scale) + shift
        time_embedding_type="positional",
        flip_sin_to_cos=True,  # [cos, sin] like synthmix
        freq_shift=0,
        num_class_embeds=cfg.num_classes + 1,  # + the null label of classifier-free guidance
        downsample_type="conv",
        upsample_type="conv",
    )
    # UNet2DModel takes a fixed head *dimension*; synthmix a fixed head *count* per layer.
    # Heads own no parameters and AttnProcessor2_0 reads `attn.heads`, so set the count.
    for module in model.modules():
        if isinstance(module, Attention):
            module.heads = cfg.num_heads
    return model


def diffusers_eps(model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Any]:
    """(x_t, t, y) -> eps with the diffusers model, for synthmix.diffusion.loss.ddpm_loss."""

    def eps(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return model(x, t, class_labels=y, return_dict=False)[0]

    return eps


def _copy(dst: Any, src: Any) -> None:
    for name, p in dst.named_parameters(recurse=False):
        p.copy_(getattr(src, name))


def _copy_resblock(dst: Any, src: Any) -> None:
    for a, b in [
        ("norm1", "norm1"),
        ("conv1", "conv1"),
        ("time_emb_proj", "emb"),
        ("norm2", "norm2"),
        ("conv2", "conv2"),
    ]:
        _copy(getattr(dst, a), getattr(src, b))
    if dst.conv_shortcut is not None:
        _copy(dst.conv_shortcut, src.skip)


def _copy_attention(dst: Any, src: Any) -> None:
    _copy(dst.group_norm, src.norm)
    for i, lin in enumerate([dst.to_q, dst.to_k, dst.to_v]):  # fused qkv rows are q | k | v
        c = lin.weight.shape[0]
        lin.weight.copy_(src.qkv.weight[i * c : (i + 1) * c])
        lin.bias.copy_(src.qkv.bias[i * c : (i + 1) * c])
    _copy(dst.to_out[0], src.proj)


def _copy_level(blocks: Any, level: Any) -> None:
    for j, (res, att) in enumerate(zip(level.blocks, level.attns)):
        _copy_resblock(blocks.resnets[j], res)
        if not isinstance(att, nn.Identity):
            _copy_attention(blocks.attentions[j], att)


@torch.no_grad()
def copy_synthmix_weights(dst: Any, src: Any) -> None:
    """Load a (matched) synthmix U-Net's weights into the diffusers model, layer by layer."""
    _copy(dst.time_embedding.linear_1, src.time_embed.mlp[0])
    _copy(dst.time_embedding.linear_2, src.time_embed.mlp[2])
    _copy(dst.class_embedding, src.label_embed)
    _copy(dst.conv_in, src.in_conv)
    for i, block in enumerate(dst.down_blocks):
        _copy_level(block, src.down[i])
        if block.downsamplers is not None:
            _copy(block.downsamplers[0].conv, src.downsamplers[i])
    mid = dst.mid_block
    _copy_resblock(mid.resnets[0], src.mid.blocks[0])
    _copy_attention(mid.attentions[0], src.mid.attns[0])
    _copy_resblock(mid.resnets[1], src.mid.blocks[1])
    for i, block in enumerate(dst.up_blocks):
        _copy_level(block, src.up[i])
        if block.upsamplers is not None:
            _copy(block.upsamplers[0].conv, src.upsamplers[i][1])
    _copy(dst.conv_norm_out, src.out_norm)
    _copy(dst.conv_out, src.out_conv)


def diffusers_scheduler(name: str, schedule: NoiseSchedule) -> Any:
    """The diffusers scheduler doing what synthmix's sampler `name` does, on the same betas."""
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

    common = {"num_train_timesteps": schedule.T, "trained_betas": schedule.betas.tolist()}
    if name == "ancestral":  # sigma_t^2 = beta_t (SPEC section 2) is diffusers' "fixed_large"
        return DDPMScheduler(**common, variance_type="fixed_large", clip_sample=False)
    if name == "ddim":
        return DDIMScheduler(
            **common, clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing"
        )
    if name == "dpmpp":
        return DPMSolverMultistepScheduler(
            **common,
            algorithm_type="dpmsolver++",
            solver_order=2,
            timestep_spacing="trailing",
            final_sigmas_type="zero",
            lower_order_final=True,
        )
    raise ValueError(f"no diffusers scheduler for {name!r}")


@torch.no_grad()  # what diffusers' pipelines use (not inference_mode)
def diffusers_sample(
    eps_model: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    scheduler: Any,
    x_T: torch.Tensor,
    labels: torch.Tensor,
    null_label: int,
    guidance_scale: float,
    steps: int,
    max_steps: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The scheduler loop as DiTPipeline writes it: cond and uncond in one batched forward,
    eps = uncond + s (cond - uncond) with s = 1 + w, then `scheduler.step` on the B images."""
    scheduler.set_timesteps(steps)
    x = x_T * scheduler.init_noise_sigma
    y2 = torch.cat([labels, torch.full_like(labels, null_label)])  # (2B,)
    s = 1.0 + guidance_scale  # diffusers' scale multiplies (cond - uncond): s = 1 + w
    for i, t in enumerate(scheduler.timesteps):
        if max_steps is not None and i >= max_steps:
            break
        x_in = scheduler.scale_model_input(torch.cat([x, x]), t)  # (2B, C, H, W)
        eps_cond, eps_uncond = eps_model(x_in, t.expand(len(x_in)), y2).chunk(2)
        eps = eps_uncond + s * (eps_cond - eps_uncond)
        x = scheduler.step(eps, t, x, generator=generator, return_dict=False)[0]
    return x


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_same_function(cfg: UNetConfig, batch: int = 4, seed: int = 0) -> dict[str, Any]:
    """Build both networks, copy the weights, compare eps on random inputs (eval mode)."""
    torch.manual_seed(seed)
    ours = UNet(cfg).eval()
    with torch.no_grad():  # the zero-initialised output conv would make any two nets agree
        for p in ours.parameters():
            p.add_(0.02 * torch.randn_like(p))
    theirs = diffusers_unet(cfg).eval()
    copy_synthmix_weights(theirs, ours)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch, cfg.in_channels, cfg.image_size, cfg.image_size, generator=g)
    t = torch.randint(0, 400, (batch,), generator=g)
    y = torch.randint(0, cfg.num_classes + 1, (batch,), generator=g)
    with torch.no_grad():
        a, b = ours(x, t, y), diffusers_eps(theirs)(x, t, y)
    tol = 1e-4 * max(1.0, float(a.abs().max()))
    return {
        "params_synthmix": count_params(ours),
        "params_diffusers": count_params(theirs),
        "max_abs_diff": float((a - b).abs().max()),
        "eps_scale": float(a.abs().mean()),
        "same_function": bool(torch.allclose(a, b, rtol=1e-4, atol=tol)),
    }
