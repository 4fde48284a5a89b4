#!/usr/bin/env bash
# The adversarial stage the CPU cannot afford (issue 18; 2.6-3.1 s a step here, 0.11 s on an H100),
# for a lent GPU: from the bundled weights (or INIT, e.g. the last lent GPU's packed networks), the
# GAN losses on from the first step, for MINUTES minutes of training. What comes back to OUT is what
# the next steps need and nothing else: the run's networks packed in half precision, the discriminator
# included (`seegaan-explore pack`, what the next lent GPU continues from with this script's INIT),
# its EMA networks for inference (what `evaluate` and the benchmarks read, here, on the CPU), the
# metrics, the sample grids and a record of the device and the steps trained.
#
#   OUT=out MINUTES=6 bash benchmarks/gpu_adversarial_stage.sh [INIT]
#
# Then, here: seegaan-explore evaluate --checkpoint out/model.safetensors --json, and
# python benchmarks/age_detail.py --checkpoint out/model.safetensors.
# Where the package's pure-Python needs are missing (pydicom and captum on the lent GPUs' image), put
# their wheels in .whl/ first (python3 -m pip download --no-deps -d .whl pydicom==3.0.2 captum==0.9.0):
# they are installed to /tmp/site. A dry run on the CPU: OUT=/tmp/dry MINUTES=2 STEPS=6 PHANTOMS=200
# CHECKPOINT_EVERY=2 RUN=/tmp/dry-run bash benchmarks/gpu_adversarial_stage.sh
set -euo pipefail
INIT=${1:-seegaan_explore/weights/demo-seegaan.safetensors}
OUT=${OUT:?set OUT to the folder the results go to}
MINUTES=${MINUTES:-6}
STEPS=${STEPS:-3000}                    # the cosine decay runs over its last third
LR=${LR:-2e-4}                          # costs the reconstructions less at the start than 1e-3 (training-log.md)
D_WARMUP=${D_WARMUP:-0}                 # --discriminator-warmup: did not hold the reconstructions on the CPU
PHANTOMS=${PHANTOMS:-12000}             # the bundled model's training cohort
CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-250}
RUN=${RUN:-runs/gpu-adversarial}
COHORT=runs/phantoms128-$PHANTOMS

export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
explore() { python3 -m seegaan_explore "$@"; }
mkdir -p "$OUT"
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU"; } | tee "$OUT/record.txt"

test -f "$COHORT/phantoms.csv" || explore phantoms --n "$PHANTOMS" --size 128 --seed 0 --out "$COHORT" --no-progress
started=$(date +%s)
timeout "${MINUTES}m" python3 -m seegaan_explore train --data "$COHORT/phantoms.csv" --patient-column patient_id \
    --init "$INIT" --adversarial-start 0 --batch-size 32 --steps "$STEPS" --lr "$LR" \
    --discriminator-warmup "$D_WARMUP" --lr-decay-start $((STEPS * 2 / 3)) \
    --checkpoint-every "$CHECKPOINT_EVERY" --sample-every 500 --no-progress --out "$RUN" || [ $? -eq 124 ]
seconds=$(( $(date +%s) - started ))

explore pack "$RUN/checkpoint-last.safetensors" --out "$OUT/networks-fp16.safetensors"
step=$(python3 - "$RUN/checkpoint-last.safetensors" "$OUT/model.safetensors" <<'EOF'
import sys
from seegaan_explore.model import load_model, read_metadata, save_model
save_model(sys.argv[2], load_model(sys.argv[1]), ema_only=True, half=True)  # the last checkpoint's EMA networks
print(read_metadata(sys.argv[1])["training_state"]["step"])
EOF
)
cp "$RUN/metrics.jsonl" "$RUN"/samples-*.png "$OUT/"
echo "init $INIT; checkpointed at step $step of $STEPS after $seconds s of training (MINUTES=$MINUTES, batch 32," \
    "lr $LR, GAN losses from step 0, the discriminator alone for $D_WARMUP steps)" | tee -a "$OUT/record.txt"
