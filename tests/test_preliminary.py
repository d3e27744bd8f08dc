"""benchmarks/preliminary.py: the study's preliminary DDPM experiments (image size x T, half
vs all of the data), end to end on tiny DDPMs of the 8x8 digits, judged on validation only."""

import json

import pytest
from benchmark_module import benchmark_module
from test_ddpm_time_to_quality import CFG
from test_sampler_quality import TINY_DDPM


@pytest.fixture(scope="module")
def prelim():
    yield from benchmark_module("preliminary")


def test_candidates_match_compute_and_share_the_reference(prelim):
    exps = prelim.candidates(560, 16, 32, [400, 1000], ["unet.preset=tiny"])
    size_t, share = exps["size-T"], exps["data-share"]
    assert size_t[0] == share[0]  # one DDPM serves as the reference of both experiments
    names = [c.split(":")[0] for c in size_t + share[1:]]
    assert names == ["s16-T400-half", "s16-T1000-half", "s32-T400-half", "s32-T1000-half",
                     "s16-T400-all"]
    big = dict(kv.split("=") for kv in size_t[2].split(":")[1].split(","))
    assert big["train.max_steps"] == "140" and big["train.warmup_steps"] == "14"  # 560 / 4
    assert big["unet.preset"] == "tiny" and big["data.image_size"] == "32"
    assert share[1].endswith("data.diffusion_fraction=1")
    cut = prelim.candidates(560, 16, 32, [400, 1000], large_T=[400])["size-T"]
    assert [c.split(":")[0] for c in cut] == ["s16-T400-half", "s16-T1000-half", "s32-T400-half"]


@pytest.mark.slow
def test_tiny_preliminary_judges_each_ddpm_on_its_own_validation(prelim, tmp_path,
                                                                   forbid_rework):
    out = tmp_path / "prelim"
    sets = [s for s in TINY_DDPM if s != "--set" and not s.startswith(
        ("train.max_steps", "data.image_size", "schedule.T"))]
    argv = [CFG, "--steps", "4", "--small", "8", "--large", "16", "--T", "8", "12",
            "--large-T", "8",
            *(x for s in sets for x in ("--set", s)), "--real", "digits",
            "--sampler", "dpmpp:2", "--guidance", "1", "--n-per-class", "5", "--seeds", "2",
            "--max-epochs", "1", "--patience", "1", "--steps-per-epoch", "3", "--out", str(out),
            "--no-progress"]
    assert prelim.main(argv) == 0
    result = json.loads((out / prelim.RESULT_JSON).read_text())
    size_t = result["experiments"]["size-T"]["rows"]
    share = result["experiments"]["data-share"]["rows"]
    assert [r["candidate"] for r in size_t] == ["s8-T8-half", "s8-T12-half", "s16-T8-half"]
    assert [r["steps_trained"] for r in size_t] == [4, 4, 1]  # equal compute: 4 / 4
    assert [r["candidate"] for r in share] == ["s8-T8-half", "s8-T8-all"]
    for r in size_t + share:
        assert r["val_macro_f1"]["n"] == 2 and r["fid_vs_validation"] > 0
        assert 0 <= r["precision_vs_validation"] <= 1 and 0 <= r["recall_vs_validation"] <= 1
        assert r["cas_share_of_real"] == pytest.approx(
            r["val_macro_f1"]["mean"] / r["real_baseline_val_macro_f1"]["mean"])
    # Each judge data (image size, DDPM share) has its own validation split and baseline.
    keys = {r["candidate"]: r["judge_data"] for r in size_t + share}
    assert keys["s8-T8-half"] == keys["s8-T12-half"] != keys["s16-T8-half"]
    assert not (out / "s16-T12-half").exists()  # --large-T 8: not run at 16 pixels
    assert keys["s8-T8-all"] != keys["s8-T8-half"]
    n_val = {r["candidate"]: r["n_validation"] for r in size_t + share}
    assert n_val["s8-T8-all"] > n_val["s8-T8-half"]  # the full-data split's validation is 10%
    assert not list(out.rglob("test_metrics.json"))  # the test set is never read
    judged = json.loads((out / "s8-T8-half" / "best" / "sampler_quality.json").read_text())
    assert judged["classifier"]["train"]["steps_per_epoch"] == 3  # a fixed-length epoch
    summary = json.loads((out / "s8-T8-half" / "best" / "real-baseline" / "seed-0"
                          / "train_summary.json").read_text())
    assert summary["steps"] == 3 * summary["epochs"]
    for key in ("size-T", "data-share"):
        assert (out / f"prelim-{key}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / prelim.RESULT_MD).read_text()
    assert "| s16-T8-half | 1 |" in md and "| s8-T8-all | 4 |" in md
