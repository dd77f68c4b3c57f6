#!/usr/bin/env bash
# The GPU rows of benchmarks/README.md and the CUDA tests, in one go, on a machine with a GPU:
#   bash benchmarks/gpu_rows.sh LOGDIR        (the interpreter: $PYTHON, default python3)
# Each step's output goes to LOGDIR/<step>.log and to the terminal; a failing step does not
# stop the others. Timings are medians of interleaved rounds (see each script's docstring).
set -uo pipefail
PY=${PYTHON:-python3}
LOG=${1:?usage: bash benchmarks/gpu_rows.sh LOGDIR}
mkdir -p "$LOG"
export PYTHONUNBUFFERED=1
step() {
    local name=$1; shift
    echo "=== $name: $*"
    local start=$SECONDS
    timeout "${STEP_TIMEOUT:-240}" "$@" > "$LOG/$name.log" 2>&1
    echo "rc=$? after $((SECONDS - start)) s" >> "$LOG/$name.log"
    tail -n 25 "$LOG/$name.log"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
step cuda_tests "$PY" -m pytest -q -s -p no:cacheprovider -m cuda tests/test_cuda.py
A="$PY benchmarks/bench_analysis.py --device cuda --images 256 --batch-size 64 --rounds 5"
step analysis_vit_s_fp32 $A --breakdown
step analysis_vit_s_amp $A --amp
step analysis_vit_b_amp $A --amp --model vit_base_patch16_224 --breakdown
step analysis_vit_b_fp32 $A --model vit_base_patch16_224
T="$PY benchmarks/bench_train.py --device cuda --amp --batch-size 64 --rounds 5 --workers 12"
step train_vit_s16_amp $T --preset vit_s16
step train_vit_b16_amp $T --preset vit_b16 --loader-steps 0
# The command line at the papers' size: one epoch of DINO on ViT-B/16 (bf16, the default on a
# GPU), then every analysis of the trained checkpoint on the GPU.
W=$(mktemp -d)
step cli_train_dino_vit_b16 "$PY" -m vitprobe train --method dino --preset vit_b16 --data synthetic:512 \
    --epochs 1 --set warmup_epochs=0 --batch-size 64 --device cuda --num-workers 12 --no-progress --out "$W/dino"
step cli_analyze_vit_b16 "$PY" -m vitprobe analyze --checkpoint "$W/dino/final.safetensors" \
    --data synthetic:512 --batch-size 64 --device cuda --num-workers 8 --no-progress --out "$W/analysis"
rm -rf "$W"
