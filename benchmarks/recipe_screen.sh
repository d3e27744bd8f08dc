#!/bin/bash
# DDPM recipe screening on the `cpu` MNIST preset (issue: a better recipe per CPU-minute).
# Each candidate trains the preset with one change at the same step budget, then
# benchmarks/sampler_quality.py scores its samples on VALIDATION images (never the test set):
# DPM-Solver++ 20 steps at w = 1 and 3, 200 images per class, 2 classifier seeds.
#
#   OUT=runs/recipes STEPS=1500 bash benchmarks/recipe_screen.sh baseline cosine min-snr ...
#
# Candidates are named below; results land in $OUT/<name>/sq/sampler_quality.json.
set -u
OUT=${OUT:-runs/recipes}; STEPS=${STEPS:-1500}; DATA=${DATA:-../shared/datasets}
PY=${PY:-.venv/bin/python}; export PYTHONPATH=$PWD/src:${PYTHONPATH:-}
declare -A SETS=(
  [baseline]=""
  [cosine]="--set schedule.kind=cosine"
  [min-snr]="--set loss_weighting=min_snr --set min_snr_gamma=5"
  [lr-cosine]="--set train.lr_schedule=cosine --set train.min_lr_ratio=0.1"
  [ema-9995]="--set train.ema_decay=0.9995"
  [lr-2e-3]="--set train.lr=2e-3"
  [wide]="--set unet.preset=cpu-wide"
  [native28]="--set data.image_size=28 --set data.resize=pad"
)
for name in "$@"; do
  run="$OUT/$name"
  echo "=== $(date +%T) $name (load $(cut -d' ' -f1 /proc/loadavg))"
  if [ ! -f "$run/ddpm/train_summary.json" ]; then
    resume=""; [ -d "$run/ddpm/checkpoints" ] && resume="--resume $run/ddpm"
    if [ -n "$resume" ]; then
      $PY -m synthmix train-ddpm $resume --no-progress || exit 1
    else
      $PY -m synthmix train-ddpm configs/ddpm/mnist-cpu.yaml --run-dir "$run/ddpm" \
        --set data.data_dir="$DATA" --set train.max_steps="$STEPS" --set train.max_minutes=null \
        --set train.patience=null ${SETS[$name]} --no-progress || exit 1
    fi
  fi
  $PY benchmarks/sampler_quality.py "$run/ddpm" --real mnist --data-dir "$DATA" \
    --configs dpmpp:20 --guidance 1 3 --n-per-class 200 --seeds 2 --out "$run/sq" \
    --no-progress | tail -8
done
