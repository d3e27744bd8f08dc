#!/bin/bash
# The prepared GPU check: what synthmix still has to measure on a GPU, made to work the first
# time inside the device tool's rules (/work/.library/device/README.md): 15 minutes of device
# time per session, cold start and transfers included; one command of at most 10 minutes; only
# the working tree and the ignored paths named in `carry` travel; only files under the tool's
# own $OUT come back (8 files, 16 MiB each); a machine stays warm 30 s after a call.
#
# THE PLAN
#   here, once:  bash benchmarks/gpu_check.sh prepare
#     copies MNIST (11 MiB) and the CIFAR-10 JPEG archive (19 MiB) from ../shared/datasets into
#     gpu-data/ (git-ignored) and prints the carry list to name: ["gpu-data"].
#   call 1 (at most 9 minutes), the one that matters:
#     run(command="bash benchmarks/gpu_check.sh call1", carry=["gpu-data"], timeout_s=570)
#     env; the estimate of configs/gpu/mnist-first-window.yaml; then that study: the MNIST `gpu`
#     study cut to one repeat, one synthetic set and 1,500 DDPM steps (its header says what is
#     cut), into gpu-work/ (git-ignored, so it stays on a warm machine and is never carried).
#   call 2 (optional; at once, while the machine is warm, if status leaves >= 4.5 min):
#     run(command="bash benchmarks/gpu_check.sh call2", carry=["gpu-data"], timeout_s=250)
#     if call 1's study did not finish: resume it (same command, same folder); else the noise
#     rules (ancestral-400, paper U-Net, batch 500), the study's classifier at its batch
#     (bench.py --study), and a short CIFAR-10 `gpu` study (smoke of the path, not a result).
#   Never set OUT in the command: the tool's $OUT is the only folder that comes back.
#
# THE ARITHMETIC (call 1 must fit 540 s). Counts from `synthmix experiment CONFIG --estimate`
# on the CPU; rates from the H200 runs of 28 November (benchmarks/results/README.md) and FLOP
# counts (torch.utils.flop_counter, forward pass of one 1x32x32 image): `paper` U-Net 5.23
# GFLOP, `gpu` U-Net 6.19, `small` classifier 0.146.
#   DDPM: the `paper` U-Net trained at 713 img/s at batch 64 (90 ms/step, dispatch-bound), and
#     its fp32 (TF32) sampling at batch 1,000 ran 282 img/s x 20 steps x 2 evaluations x 5.23
#     GFLOP = 59 TFLOP/s. A `gpu` step at batch 256 is 256 x 3 x 6.19 GFLOP = 4.75 TFLOP: 80 ms
#     at 59 TFLOP/s; budget 120 ms: 1,500 steps = 180 s, which the 3-minute cap also bounds.
#   sampling: DPM++-10 guided = 20 evaluations x 6.19 GFLOP = 124 GFLOP per image: 475 img/s at
#     59 TFLOP/s, not counting any gain from bf16; budget 450 img/s: tuning 4 x 2,000 + the set
#     26,880 = 34,880 images = 78 s.
#   classifiers: 8 runs (5 of Table 6, 3 real-only controls) + 4 tuning runs, at most 4,344
#     steps of 512 (early stopping ends most sooner). The `small` ResNet measured ~10 ms/step at
#     batch 64 (dispatch-bound); a step at 512 is 0.22 TFLOP. Budget 20 ms: 87 s, and 2 s per
#     run of set-up, validation and test: 24 s.
#   quality 30 s (10,000 images a side, issue 24); data, report, start-up 40 s.
#   The study: 180 + 78 + 111 + 30 + 40 = 439 s; with env (10 s) and the estimate (~30 s) 479 s.
#   The stage limits (env 20, estimate 60, study 445) hold call 1 to 525 s whatever the rates.
#   The full configs/gpu/mnist.yaml is 4,000 DDPM steps (capped at 300 s), 88,640 images
#   (197 s), 24 + 4 runs of at most 12,648 steps (253 s + 56 s): ~870 s with the rest, so it
#   needs a session of its own; the estimate's measured rates say how far off this is.
#
# USAGE
#   bash benchmarks/gpu_check.sh prepare          # here: data into gpu-data/, prints the carry
#   bash benchmarks/gpu_check.sh call1 | call2    # on the device (OUT set by the tool)
#   QUICK=1 DEV=cpu OUT=/tmp/gpu-smoke bash benchmarks/gpu_check.sh call1   # a CPU rehearsal
# Environment: DEV (cuda), QUICK (0; 1 = tiny sizes), STAGES (a call's stages, e.g. "env
# estimate mnist"), DATA (gpu-data), WORK (gpu-work), T_<STAGE> (seconds, a stage's limit),
# FAIL_STAGE (a stage made to fail: tests the failure path), PY (python3).
#
# WHAT COMES BACK in $OUT (6 files at most a call): log.txt (everything, as it runs),
# check.json (the machine, each stage's status, seconds and limit, the overrides), for each
# study the call ran <study>.tgz (its folder without weights or shards: results.json,
# stages.json, report.md, plan, figures, manifests, every run's metrics) and <study>-report.md,
# noise-speed.json, bench-classifier.json. Each is rewritten after every stage and every 45 s
# during a study, so a timeout loses at most the last 45 s. The exit status is 1 when any stage
# failed or ran out of time; the last lines of each failed stage's log are printed.
set -u -f  # -f: no globbing, so overrides such as tune.guidance_scales=[1.0] pass as written
set -o pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
MODE=${1:-call1}
DEV=${DEV:-cuda}; QUICK=${QUICK:-0}; PY=${PY:-python3}
DATA=${DATA:-$ROOT/gpu-data}
WORK=${WORK:-$ROOT/gpu-work}
SHARED=${SHARED:-$ROOT/../shared/datasets}
DATASETS="mnist cifar10-jpeg"
MNIST_CFG=configs/gpu/mnist-first-window.yaml
MNIST_STUDY=gpu-mnist-first-window
CIFAR_STUDY=gpu-cifar10-short
say() { echo "gpu_check: $*"; }

prepare() {  # here: copy the data sets into the tree, where `carry` can take them
  local d rel
  case "$DATA" in "$ROOT"/*) rel=${DATA#"$ROOT"/} ;;
    *) say "DATA=$DATA is outside the working tree, so it cannot travel"; exit 2 ;; esac
  for d in $DATASETS; do
    [ -d "$SHARED/$d" ] || { say "$SHARED/$d is missing: nothing to copy"; exit 2; }
  done
  mkdir -p "$DATA"
  for d in $DATASETS; do rm -rf "${DATA:?}/$d"; cp -R "$SHARED/$d" "$DATA/$d" || exit 2; done
  git -C "$ROOT" check-ignore -q "$rel" || { say "$rel is not ignored by git"; exit 2; }
  say "copied $DATASETS into $rel/ ($(du -sm "$DATA" | cut -f1) MiB; the tree may carry 64)"
  echo "carry: [\"$rel\"]"
  echo "call 1: run(command=\"bash benchmarks/gpu_check.sh call1\", carry=[\"$rel\"], timeout_s=570)"
  echo "call 2: run(command=\"bash benchmarks/gpu_check.sh call2\", carry=[\"$rel\"], timeout_s=250)"
}

if [ "$MODE" = prepare ]; then prepare; exit 0; fi
case "$MODE" in call1|call2) ;; *) say "unknown mode '$MODE' (prepare, call1, call2)"; exit 2;; esac
[ -n "${OUT:-}" ] || { say "OUT is not set (the device tool sets it; here: OUT=/tmp/x)"; exit 2; }
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) || { say "cannot create OUT=$OUT"; exit 2; }
mkdir -p "$WORK/logs" && WORK=$(cd "$WORK" && pwd) || { say "cannot create WORK=$WORK"; exit 2; }
cd "$ROOT" || exit 2
export PYTHONUNBUFFERED=1 PYTHONPATH=$ROOT/src:${PYTHONPATH:-}
export SYNTHMIX_CACHE=${SYNTHMIX_CACHE:-$WORK/cache} GPU_CHECK_CALL=$MODE QUICK
LOG=$OUT/log.txt
: > "$WORK/stages.tsv"
FAILED=""

if [ "$QUICK" = 1 ]; then  # tiny sizes: does every stage run at all? (tests/test_gpu_check.py)
  # amp off: bf16 is emulated, ~10x slower, on CPUs without it. MNIST at 8x8, 2% validation,
  # a DDPM half of 10% (the memorisation check reads every DDPM training image: 29,400 of them
  # at 0.5 took 28 of the rehearsal study's 66 s on a 2-core CPU; 5,880 at 0.1).
  SMALL="--set data.image_size=8 --set data.val_fraction=0.02 --set data.diffusion_fraction=0.1
    --set ddpm.overrides.unet.preset=tiny
    --set ddpm.overrides.train.max_steps=2 --set ddpm.overrides.train.steps_per_epoch=2
    --set ddpm.overrides.train.batch_size=16 --set ddpm.overrides.train.amp=off
    --set ddpm.overrides.sample.grid_per_class=1 --set ddpm.overrides.sample.steps=2
    --set synthetic.n_per_class=10 --set synthetic.steps=2 --set synthetic.batch_size=100
    --set tune.n_per_class=5 --set tune.guidance_scales=[1.0] --set classifier.model.preset=tiny
    --set classifier.train.max_epochs=1 --set classifier.train.steps_per_epoch=2
    --set classifier.train.batch_size=32 --set classifier.train.amp=off
    --set mixes.real_pool_size=300 --set mixes.controls=false --set quality.max_images=100
    --set num_threads=2"
  NS="--preset tiny --shape 1 16 16 --batch 16 --steps 2 --repeats 1"; BQ=--quick
  CIFAR_SHORT="--set ddpm.overrides.train.max_steps=4"
else
  SMALL=""; NS="--preset paper --shape 1 32 32 --batch 500 --steps 20"; BQ=""
  # A smoke of the colour path in ~110 s, not a result: 300 DDPM steps, 200 images per class,
  # a 5,000-image real pool, 5 classifier epochs.
  CIFAR_SHORT="--set ddpm.overrides.train.max_steps=300 --set ddpm.overrides.train.max_minutes=1
    --set synthetic.n_per_class=200 --set tune.guidance_scales=[1.0,2.0] --set tune.n_per_class=50
    --set mixes.real_pool_size=5000 --set classifier.train.max_epochs=5
    --set quality.max_images=2000"
fi
OVR="--set device=$DEV $SMALL"
export GPU_CHECK_OVERRIDES="$OVR"
# shellcheck disable=SC2206
OVR_ARGS=($OVR)

record() { $PY "$HERE/gpu_check_record.py" record "$WORK" "$OUT/check.json" >/dev/null 2>&1; }

pack() {  # a study folder without weights and shards, as one .tgz and its report, into $OUT
  local s=$1
  [ -d "$WORK/$s" ] || return 0
  tar -C "$WORK" -czf "$OUT/$s.tgz.part" --exclude='*.safetensors' --exclude='*.npz' \
    --exclude='*.pt' --exclude=checkpoints --exclude=cache "$s" 2>/dev/null \
    && mv -f "$OUT/$s.tgz.part" "$OUT/$s.tgz"
  rm -f "$OUT/$s.tgz.part"
  [ -f "$WORK/$s/report.md" ] && cp -f "$WORK/$s/report.md" "$OUT/$s-report.md"
  return 0
}

PACKER=""
stop_packer() {
  [ -n "$PACKER" ] || return 0
  kill "$PACKER" 2>/dev/null; wait "$PACKER" 2>/dev/null; PACKER=""
}
STUDIES=""  # the studies this call worked on: only they are packed (8 files come back at most)
finish() {  # also on a signal: what was measured comes back
  local s
  stop_packer
  for s in $STUDIES; do pack "$s"; done
  record
}
trap finish EXIT
trap 'exit 143' TERM INT

run_stage() {  # NAME LIMIT_S STUDY_OR_- COMMAND...: run under a limit, log, record
  local name=$1 limit=$2 study=$3 t0=$SECONDS rc
  shift 3
  [ "${FAIL_STAGE:-}" = "$name" ] && set -- sh -c "echo 'injected failure (FAIL_STAGE=$name)'; exit 3"
  say "$(date +%T) $name (limit ${limit} s)"
  echo "=== $(date +%T) $name (limit ${limit} s): $*" >> "$LOG"
  if [ "$study" != - ]; then  # TERM ends it between two packs, never inside one
    STUDIES="$STUDIES $study"
    ( trap 'kill $! 2>/dev/null; exit 0' TERM; while :; do sleep 45 & wait $!; pack "$study"
      done ) & PACKER=$!
  fi
  timeout -k 10 "$limit" "$@" 2>&1 | tee "$WORK/logs/$name.log" >> "$LOG"
  rc=${PIPESTATUS[0]}
  stop_packer
  [ "$study" != - ] && pack "$study"
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" "$limit" >> "$WORK/stages.tsv"
  record
  echo "=== rc=$rc after $((SECONDS - t0)) s" >> "$LOG"
  if [ "$rc" != 0 ]; then
    FAILED="$FAILED $name"
    say "$name FAILED (rc=$rc$([ "$rc" = 124 ] && echo ", ran out of its ${limit} s")); its last lines:"
    tail -n 15 "$WORK/logs/$name.log" | sed 's/^/    /'
  else
    say "$name ok in $((SECONDS - t0)) s"
  fi
  return "$rc"
}

need_data() {  # one line and exit 2 when a data set the call needs has not travelled
  local d
  for d in "$@"; do
    [ -d "$DATA/$d" ] || { say "no data at $DATA/$d: run 'bash benchmarks/gpu_check.sh prepare'" \
      "here, then name gpu-data in the call's carry list" | tee -a "$LOG"; exit 2; }
  done
}

mnist_done() { [ -f "$WORK/$MNIST_STUDY/results.json" ]; }
if [ -n "${STAGES:-}" ]; then :
elif [ "$MODE" = call1 ]; then STAGES="env estimate mnist"
elif mnist_done; then STAGES="env noise bench cifar"
else STAGES="env mnist"
fi
want() { case " $STAGES " in *" $1 "*) return 0;; esac; return 1; }
want mnist && need_data mnist
want estimate && need_data mnist
want bench && need_data mnist
want cifar && need_data cifar10-jpeg

say "$MODE: stages '$STAGES'; results in $OUT; study folders in $WORK"
run_stage env "${T_ENV:-20}" - $PY "$HERE/gpu_check_record.py" env "$DEV" "$WORK/env.json" \
  || { say "the environment is not usable; nothing else runs"; exit 1; }
if want estimate; then
  run_stage estimate "${T_ESTIMATE:-60}" - $PY -m synthmix experiment "$MNIST_CFG" --estimate \
    --set data.data_dir="$DATA" "${OVR_ARGS[@]}"
fi
if want mnist; then
  run_stage mnist "${T_MNIST:-$([ "$MODE" = call1 ] && echo 445 || echo 210)}" "$MNIST_STUDY" \
    $PY -m synthmix experiment "$MNIST_CFG" --study-dir "$WORK/$MNIST_STUDY" --no-progress \
    --set data.data_dir="$DATA" "${OVR_ARGS[@]}"
fi
if want noise; then
  run_stage noise "${T_NOISE:-40}" - $PY benchmarks/noise_speed.py $NS --device "$DEV" --amp \
    --out "$OUT/noise-speed.json"
fi
if want bench; then
  run_stage bench "${T_BENCH:-40}" - $PY benchmarks/bench.py $BQ --parts classifier \
    --device "$DEV" --study "$MNIST_CFG" --set data.data_dir="$DATA" "${OVR_ARGS[@]}" \
    --out "$OUT/bench-classifier.json"
fi
if want cifar; then
  # shellcheck disable=SC2086
  run_stage cifar "${T_CIFAR:-130}" "$CIFAR_STUDY" $PY -m synthmix experiment \
    configs/gpu/cifar10.yaml --study-dir "$WORK/$CIFAR_STUDY" --no-progress \
    --set data.data_dir="$DATA" "${OVR_ARGS[@]}" --set synthetic.sets=1 --set seeds=1 \
    $CIFAR_SHORT
fi
finish
trap - EXIT
if [ -n "$FAILED" ]; then say "done; failed:$FAILED (see $OUT/log.txt)"; exit 1; fi
say "done; every stage ok"
