#!/bin/bash
# The README's worked example of "Your own images": a user-style folder built from 4 classes of
# the shared CIFAR-10 JPEG archive, a few hundred images per class, run through the one command
#
#   synthmix experiment --data imagefolder:$WORK/cifar4-300 --study-dir $WORK/study
#
# then its report, results, plan (every size and its rule), stages and run record copied into
# benchmarks/results/cpu-2core-folder-cifar4-300*. Run it alone on the machine (about 15
# minutes on 2 cores is the target; `--estimate` first says how long here):
#
#   bash benchmarks/folder_example.sh            # the full example
#   SMOKE=1 bash benchmarks/folder_example.sh    # seconds: 40 images per class, tiny models,
#                                                # results left in $WORK only
set -euo pipefail
ARCHIVE=${ARCHIVE:-../shared/datasets/cifar10-jpeg/cifar10-jpeg.tar.gz}
CLASSES=${CLASSES:-"airplane automobile bird cat"}
WORK=${WORK:-/tmp/synthmix-folder-example}
PY=${PY:-.venv/bin/python}
OUT=benchmarks/results
SMOKE=${SMOKE:-0}
if [ "$SMOKE" = 1 ]; then
  TRAIN_GLOB='00[0-3]?'; TEST_GLOB='000?'; NAME=folder-smoke  # 40 train, 10 test per class
  SETS=(--budget-minutes 0 --set data.image_size=8 --set ddpm.overrides.unet.preset=tiny
        --set ddpm.overrides.schedule.T=20 --set ddpm.overrides.train.max_steps=4
        --set ddpm.overrides.train.steps_per_epoch=2 --set ddpm.overrides.sample.steps=2
        --set ddpm.overrides.sample.grid_per_class=1 --set synthetic.n_per_class=10
        --set synthetic.steps=2 --set classifier.train.max_epochs=1
        --set classifier.train.steps_per_epoch=2 --set tune.guidance_scales=[1.0,2.0]
        --set worth.synthetic_fractions=[1.0] --set quality.max_images=100)
else
  TRAIN_GLOB='0[0-2]??'; TEST_GLOB='00??'; NAME=cifar4-300  # 300 train, 100 test per class
  SETS=()
fi
DATA="$WORK/$NAME"  # PATH/{train,test}/<class>/*.jpg, as a user's folder would hold them
STUDY="$WORK/study-$NAME"

if [ ! -d "$DATA/train" ]; then
  rm -rf "$WORK/extract" && mkdir -p "$WORK/extract" "$DATA"
  patterns=()
  for c in $CLASSES; do
    patterns+=("cifar10-jpeg/train/$c/$TRAIN_GLOB.jpg" "cifar10-jpeg/test/$c/$TEST_GLOB.jpg")
  done
  tar -xzf "$ARCHIVE" -C "$WORK/extract" --wildcards "${patterns[@]}"
  mv "$WORK/extract/cifar10-jpeg/train" "$WORK/extract/cifar10-jpeg/test" "$DATA/"
  rm -rf "$WORK/extract"
fi
echo "=== $(date -u +%FT%TZ) folder $DATA, load $(cut -d' ' -f1-3 /proc/loadavg)"
$PY -m synthmix data info "imagefolder:$DATA"
CMD=(-m synthmix experiment --data "imagefolder:$DATA" --study-dir "$STUDY" --no-progress
     "${SETS[@]}")
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date +%s)
$PY "${CMD[@]}"
SECONDS_TAKEN=$(( $(date +%s) - START ))
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
echo "=== wall $SECONDS_TAKEN s, load before $LOAD_BEFORE, after $LOAD_AFTER"
[ "$SMOKE" = 1 ] && { echo "smoke: results left in $STUDY"; exit 0; }

P="$OUT/cpu-2core-folder-$NAME"
cp "$STUDY/report.md" "$P-report.md"
cp "$STUDY/results.json" "$P.json"
cp "$STUDY/plan.json" "$P-plan.json"
cp "$STUDY/stages.json" "$P-stages.json"
cp "$STUDY/run.json" "$P-run.json"
for pair in quality/nearest_neighbours.png:nearest-neighbours figures/worth.png:worth \
            figures/table6_bar.png:table6 ddpm/samples/final.png:ddpm-grid \
            quality/samples_per_class.png:synthetic-grid; do
  if [ -f "$STUDY/${pair%%:*}" ]; then
    cp "$STUDY/${pair%%:*}" "$P-${pair##*:}.png"
    # the published report shows the published copies
    sed -i "s|](${pair%%:*})|]($(basename "$P")-${pair##*:}.png)|" "$P-report.md"
  fi
done
$PY - "$P-command.json" "$SECONDS_TAKEN" "$LOAD_BEFORE" "$LOAD_AFTER" "$DATA" <<'EOF'
import json, subprocess, sys
import torch
out, seconds, before, after, data = sys.argv[1:]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if "model name" in l), "?")
json.dump({"command": f"synthmix experiment --data imagefolder:{data}",
           "script": "bash benchmarks/folder_example.sh",
           "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True,
                                    text=True).stdout.strip(),
           "tree_clean": not subprocess.run(["git", "status", "--porcelain", "--", "src"],
                                            capture_output=True, text=True).stdout.strip(),
           "cpu": cpu, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "wall_seconds": int(seconds), "loadavg_before": before, "loadavg_after": after},
          open(out, "w"), indent=2)
EOF
echo "copied to $P*"
