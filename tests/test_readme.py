"""The README's test command is what CI runs, and its commands exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    test_cmd = next(b.strip() for b in blocks if "pytest" in b)
    ci_lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_cmd in ci_lines
    demo_cmd = next(b.strip() for b in blocks if "synthmix demo" in b)
    assert demo_cmd.startswith("python3 -m venv .venv") and demo_cmd.endswith("synthmix demo")


def test_readme_commands_are_real_subcommands():
    from synthmix.cli import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    code = "\n".join(re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S))
    used = set(re.findall(r"^synthmix ([a-z-]+)", code, re.M))
    assert used and used <= commands, used - commands


def test_every_shipped_config_parses():
    from synthmix.config import load_config
    from synthmix.experiment.config import StudyConfig
    from synthmix.experiment.stages import ddpm_config_for
    from synthmix.runs.ddpm import DDPMConfig

    for path in sorted((ROOT / "configs" / "ddpm").glob("*.yaml")):
        load_config(DDPMConfig, path)
    studies = sorted((ROOT / "configs").glob("*/*.yaml")) + [
        ROOT / "src" / "synthmix" / "experiment" / "demo.yaml"]
    for path in studies:
        if path.parent.name == "ddpm":
            continue
        cfg = load_config(StudyConfig, path)
        if cfg.ddpm.run_dir is None:
            ddpm_config_for(cfg, path.parent)


def test_readme_states_the_one_default_sampler():
    from synthmix.diffusion.settings import DEFAULT_SAMPLING

    names = {"dpmpp": "DPM-Solver++(2M)", "ddim": "DDIM", "ancestral": "ancestral sampling"}
    text = " ".join((ROOT / "README.md").read_text().replace("*", "").split())
    assert f"{names[DEFAULT_SAMPLING.sampler]} with {DEFAULT_SAMPLING.steps} steps" in text
    assert f"thresholding `{DEFAULT_SAMPLING.thresholding}`" in text
