"""benchmarks/gpu_check.sh rehearsed on the CPU, so that the first device call works.

The script's QUICK=1 DEV=cpu mode runs the real stages at tiny sizes with the device tool's
rules: results only under $OUT, data only from the folder `prepare` fills, one line and a
non-zero exit when it is missing, a non-zero exit (with the failed stage's last lines) when a
stage fails. No GPU is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from synthmix.device import cpu_native_bf16

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def _run(tmp: Path, data: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "QUICK": "1", "DEV": "cpu", "OUT": str(tmp / "out"),
            "DATA": str(data), "WORK": str(tmp / "work"), "PY": sys.executable, **env}
    return subprocess.run(["bash", str(SCRIPT), "call1"], env=full, capture_output=True,
                          text=True, timeout=300, cwd=tmp)


def test_refuses_to_start_without_the_data(tmp_path: Path) -> None:
    empty = tmp_path / "gpu-data"
    empty.mkdir()
    proc = _run(tmp_path, empty)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(lines) == 1 and "no data at" in lines[0] and "prepare" in lines[0], lines
    assert not (tmp_path / "out" / "gpu-mnist-first-window.tgz").exists()


def test_refuses_to_start_without_out(tmp_path: Path) -> None:
    proc = _run(tmp_path, tmp_path, OUT="")
    assert proc.returncode == 2 and proc.stdout.count("\n") == 1 and "OUT is not set" in proc.stdout


@pytest.mark.slow
def test_quick_rehearsal_returns_results_and_fails_on_a_failed_stage(
    tmp_path: Path, shared_datasets: Path
) -> None:
    """The first call at tiny sizes, with the estimate made to fail: the study still runs and
    comes back under $OUT, and the exit status and stdout say which stage failed."""
    data = tmp_path / "gpu-data"
    data.mkdir()
    (data / "mnist").symlink_to(shared_datasets / "mnist")
    proc = _run(tmp_path, data, FAIL_STAGE="estimate", STAGES="env estimate mnist bench",
                T_ENV="60", T_BENCH="120")  # limits for a loaded 2-core CI machine
    out = tmp_path / "out"
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "estimate FAILED" in proc.stdout and "injected failure" in proc.stdout
    assert "mnist ok" in proc.stdout and "bench ok" in proc.stdout, proc.stdout
    check = json.loads((out / "check.json").read_text())
    assert [(s["stage"], s["status"]) for s in check["stages"]] == [
        ("env", "ok"), ("estimate", "failed"), ("mnist", "ok"), ("bench", "ok")]
    assert check["failed"] == ["estimate"] and check["env"]["device_asked"] == "cpu"
    with tarfile.open(out / "gpu-mnist-first-window.tgz") as tar:
        names = set(tar.getnames())
        study = "gpu-mnist-first-window/"
        results = json.load(tar.extractfile(study + "results.json"))  # type: ignore[arg-type]
        manifest = json.load(tar.extractfile(study + "synthetic/set-0/manifest.json"))  # type: ignore[arg-type]
    assert {"gpu-mnist-first-window/stages.json", "gpu-mnist-first-window/report.md"} <= names
    assert not any(n.endswith((".safetensors", ".npz")) for n in names)  # weights stay behind
    assert results["table"] and (out / "gpu-mnist-first-window-report.md").is_file()
    # Autocast on the CPU only where it has native bf16 (generate.sampling_dtype).
    assert manifest["environment"]["precision"] == ("bf16" if cpu_native_bf16() else "fp32")
    assert "=== rc=3" in (out / "log.txt").read_text()
    bench = json.loads((out / "bench-classifier.json").read_text())["classifier"]
    assert [(r["study"], r["preset"], r["batch"]) for r in bench] == [
        ("gpu-mnist-first-window", "tiny", 32)]  # the study's classifier at the study's batch
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8 and not any(p.name.endswith(".part") for p in files)
