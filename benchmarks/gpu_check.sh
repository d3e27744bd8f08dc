#!/bin/bash
# The prepared GPU check: everything synthmix still has to measure on a GPU, in one call of at
# most ~9.5 minutes on a lent H200 (15 minutes of device time per task: leave room to rerun).
# Stages run in order of importance, each under its own time limit, each writing into $OUT as
# it goes, so a stage that runs out of time loses only itself:
#
#   1. env and `synthmix experiment configs/gpu/mnist.yaml --estimate` (the plan timed here)
#   2. ancestral-400 with the paper U-Net at batch 500: seed rule 1 (one randn per image per
#      step) vs rule 2 (Philox, blocks of draws); target: >= 5x the <18 img/s measured before
#   3. the MNIST `gpu` study (Table 6 with controls, 3 repeats, study-sized pools); target:
#      <= 10 minutes wall, synthetic-only macro-F1 >= 0.98, real-only >= 0.99
#   4. a short CIFAR-10 `gpu` study (fewer DDPM steps, 1 synthetic set, 2 repeats)
#   5. classifier training images/s, paper and small presets, bf16 (the fast path)
#
#   OUT=gpu-out DATA=shared/datasets STAGES="estimate noise mnist" bash benchmarks/gpu_check.sh
#   OUT=gpu-out2 DATA=shared/datasets STAGES="cifar bench" bash benchmarks/gpu_check.sh
#   QUICK=1 DEV=cpu OUT=/tmp/gpu-smoke bash benchmarks/gpu_check.sh   # a CPU smoke test first
#
# STAGES (default: all five) splits the check over two calls: the first with the MNIST study
# (its 10-minute target does not leave room for more in one call), the second with the rest.
# DATA: folder holding mnist/ and cifar10-jpeg/; WHEELS: a folder of wheels to install first.
# Files come back in $OUT: log.txt, *.json, and one .tgz per study (results, stages, report).
set -u
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"; DEV=${DEV:-cuda}; QUICK=${QUICK:-0}; PY=${PY:-python3}
DATA=${DATA:-../shared/datasets}; WHEELS=${WHEELS:-}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/src:${PYTHONPATH:-}
LOG=$OUT/log.txt
W=$(mktemp -d)
STAGES=${STAGES:-estimate noise mnist cifar bench}
stage() { echo "=== $(date +%T) $1" | tee -a "$LOG"; }
want() { case " $STAGES " in *" $1 "*) return 0;; esac; return 1; }
{
  stage env
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  $PY -c "import torch,sys;print(sys.version);print(torch.__version__, torch.cuda.is_available(), torch.version.cuda)"
  nproc
} >> "$LOG" 2>&1
if [ -n "$WHEELS" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target "$W/site" "$WHEELS"/*.whl >> "$LOG" 2>&1
  export PYTHONPATH=$PYTHONPATH:$W/site
fi
if [ "$QUICK" = 1 ]; then  # tiny sizes: does every stage run at all?
  SMALL="--set ddpm.overrides.unet.preset=tiny --set ddpm.overrides.train.max_steps=4 \
    --set synthetic.n_per_class=20 --set tune.n_per_class=5 --set tune.guidance_scales=[1.0] \
    --set classifier.model.preset=tiny --set classifier.train.max_epochs=1 \
    --set classifier.train.steps_per_epoch=2 --set mixes.real_pool_size=600 \
    --set data.image_size=16 --set synthetic.sets=1 --set seeds=2 --set device=$DEV \
    --set quality.max_images=200"
  NS="--preset tiny --shape 1 16 16 --batch 16 --steps 2 --repeats 1"; BQ=--quick
  CIFAR_STEPS=4
else
  SMALL="--set device=$DEV"; NS="--preset paper --shape 1 32 32 --batch 500 --steps 20"; BQ=""
  CIFAR_STEPS=1500
fi
GPU_MNIST="--set data.data_dir=$DATA $SMALL"

if want estimate; then
stage "estimate: configs/gpu/mnist.yaml"
timeout "${T_EST:-60}" $PY -m synthmix experiment configs/gpu/mnist.yaml --estimate \
  $GPU_MNIST >> "$LOG" 2>&1; echo "rc=$?" >> "$LOG"
fi

if want noise; then
stage "ancestral-400 noise rules (batch 500, paper U-Net)"
timeout "${T_NOISE:-60}" $PY benchmarks/noise_speed.py $NS --device "$DEV" --amp \
  --out "$OUT/noise-speed.json" >> "$LOG" 2>&1; echo "rc=$?" >> "$LOG"
fi

if want mnist; then
stage "study: configs/gpu/mnist.yaml"
timeout "${T_MNIST:-420}" $PY -m synthmix experiment configs/gpu/mnist.yaml \
  --study-dir "$W/gpu-mnist" $GPU_MNIST --no-progress >> "$LOG" 2>&1; echo "rc=$?" >> "$LOG"
cp "$W/gpu-mnist/stages.json" "$OUT/gpu-mnist-stages.json" 2>/dev/null
(cd "$W" && tar czf "$OUT/gpu-mnist.tgz" gpu-mnist/results.json gpu-mnist/stages.json \
  gpu-mnist/plan.json gpu-mnist/report.md gpu-mnist/figures gpu-mnist/ddpm/train_summary.json \
  gpu-mnist/ddpm/samples/final.png gpu-mnist/tuning/tuning.json 2>/dev/null)
fi

if want cifar; then
stage "study: configs/gpu/cifar10.yaml (short)"
timeout "${T_CIFAR:-240}" $PY -m synthmix experiment configs/gpu/cifar10.yaml \
  --study-dir "$W/gpu-cifar10" --set data.data_dir="$DATA" $SMALL \
  --set ddpm.overrides.train.max_steps=$CIFAR_STEPS --set synthetic.sets=1 --set seeds=2 \
  --set tune.guidance_scales=[1.0,2.0] --no-progress >> "$LOG" 2>&1; echo "rc=$?" >> "$LOG"
(cd "$W" && tar czf "$OUT/gpu-cifar10.tgz" gpu-cifar10/results.json gpu-cifar10/stages.json \
  gpu-cifar10/report.md gpu-cifar10/ddpm/train_summary.json gpu-cifar10/ddpm/samples/final.png \
  2>/dev/null)
fi

if want bench; then
stage "bench: classifier training (fast path)"
timeout "${T_BENCH:-90}" $PY benchmarks/bench.py $BQ --presets paper --parts classifier \
  --device "$DEV" --amp bf16 --out "$OUT/bench-classifier.json" >> "$LOG" 2>&1
echo "rc=$?" >> "$LOG"
fi
stage done
