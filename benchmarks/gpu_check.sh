#!/bin/bash
# The prepared GPU check behind benchmarks/results/h200-*: sampler quality (CAS vs network
# evaluations), the training benchmark of the paper preset, and the paper preset's real commands
# (torchrun train-ddpm with DDP/NCCL and fp16, then `synthmix sample`). Each stage has its own
# time limit and writes into $OUT as it goes, so a stage that runs out of time loses only itself.
#
#   OUT=gpu-out DATA=../shared/datasets DDPM=studies/cpu-mnist/ddpm bash benchmarks/gpu_check.sh
#   QUICK=1 DEV=cpu OUT=/tmp/gpu-smoke bash benchmarks/gpu_check.sh   # a CPU smoke test first
#
# DATA: folder holding mnist/ (IDX files); DDPM: a trained `cpu` MNIST DDPM run; WHEELS: a folder
# of wheels to install first (diffusers for the benchmark) on a machine without a package index.
set -u
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"; DEV=${DEV:-cuda}; QUICK=${QUICK:-0}; PY=${PY:-python3}
DATA=${DATA:-../shared/datasets}; DDPM=${DDPM:-studies/cpu-mnist/ddpm}; WHEELS=${WHEELS:-}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/src:${PYTHONPATH:-}
LOG=$OUT/log.txt
W=$(mktemp -d)
stage() { echo "=== $(date +%T) $1" | tee -a "$LOG"; }
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
if [ "$QUICK" = 1 ]; then
  SQ="--n-per-class 3 --seeds 1 --max-epochs 1 --configs ancestral ddim:2 dpmpp:2"; BQ=--quick
  STEPS=4; NS=2; T_TRAIN=${T_TRAIN:-300}; EXTRA="--set unet.preset=tiny --set data.image_size=16 --set data.resize=resize --set train.amp=off"
else
  SQ="--n-per-class 200 --seeds 3 --max-epochs 30 --patience 5 --batch-size 1000"; BQ=""
  STEPS=400; NS=100; EXTRA=""
fi

stage "sampler quality ($DDPM)"
timeout "${T_SQ:-250}" $PY benchmarks/sampler_quality.py "$DDPM" --real mnist --data-dir "$DATA" \
  $SQ --device "$DEV" --out "$W/sq" --no-progress >> "$LOG" 2>&1; echo "rc=$?" >> "$LOG"
cp "$W/sq/sampler_quality.json" "$W/sq/sampler_quality.png" "$OUT/" 2>/dev/null
(cd "$W/sq" && tar czf "$OUT/sq-sets.tgz" sets generation.json 2>/dev/null)

stage "bench: training of the paper preset"
timeout "${T_BENCH:-150}" $PY benchmarks/bench.py $BQ --presets paper --parts train \
  --device "$DEV" --out "$OUT/bench-paper-train.json" >> "$LOG" 2>&1; echo "rc=$?" >> "$LOG"

stage "paper preset: torchrun train-ddpm (DDP, fp16 as the study)"
timeout "${T_TRAIN:-70}" $PY -m torch.distributed.run --standalone --nproc_per_node 1 \
  -m synthmix train-ddpm configs/ddpm/mnist-paper.yaml --run-dir "$W/paper" \
  --set data.data_dir="$DATA" --set train.max_steps=$STEPS --set train.max_epochs=1 \
  --set device="$DEV" --set sample.grid_every_epochs=1 $EXTRA --no-progress >> "$LOG" 2>&1
echo "rc=$?" >> "$LOG"
for s in "dpmpp 20" "ancestral 400"; do
  set -- $s
  stage "paper preset: sample $1 $2 ($NS per class)"
  timeout "${T_SAMPLE:-55}" $PY -m synthmix sample "$W/paper" --n-per-class $NS --sampler "$1" \
    --steps "$2" --batch-size 500 --checkpoint last --device "$DEV" --out "$W/set-$1" \
    --no-progress >> "$LOG" 2>&1; echo "rc=$?" >> "$LOG"
done
(cd "$W" && tar czf "$OUT/paper-run.tgz" paper/metrics.jsonl paper/train_summary.json \
  paper/run.json paper/samples paper/loss_curve.png set-*/manifest.json 2>/dev/null)
stage done
