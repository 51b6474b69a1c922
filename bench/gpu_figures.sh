#!/usr/bin/env bash
# The SDXL figures on a GPU in one go (about 5 minutes on one H200), each part on its own so that one that
# fails leaves the others to run and report:
#   0. the carried wheels (.whl/, bench/gpu_wheels.sh) installed into $SITE; versions and the GPU -> env.json
#   1. SDXL's real architecture with random weights, built on the GPU in fp16, written once as a diffusers
#      folder (bench/sdxl_model.py)
#   2. the 8 GB recipe: configs/sdxl_8gb.yaml's settings at 1024x1024 batch 1, GPU memory of the training
#      steps and s/step, next to the estimate (bench/sdxl_8gb.py)
#   3. trainer vs the bare diffusers + peft SDXL loop, A/B + A/A rounds as long as the budget allows
#      (bench/sdxl_speed.py)
# The results' JSON and this log land in $OUT; the last lines are a summary (bench/gpu_summary.py).
#
# usage: bash bench/gpu_figures.sh           on the GPU machine (python3 there holds torch)
#        PY=.venv/bin/python bash bench/gpu_figures.sh --tiny
#                                            the same steps on a CPU with the tiny SDXL at 64 px, in bf16 as
#                                            on the GPU; the wheels are installed for Python 3.12 into $SITE
#                                            (checked, not imported; WHEELS= below)
# env: OUT (results; default /tmp/gpu-figures), BUDGET_S (default 300: each part gets what is left, at least
#      30 s; the speed part starts a second round only if it fits), PY (default python3),
#      BENCH_OUT (model, photos, results; default /tmp/lora-bench), SITE (default /tmp/site),
#      PARTS (default "model 8gb speed"; e.g. PARTS="model speed" for the trainer-vs-bare row alone;
#      "compile": the catalogue job with torch.compile, bench/generation.py --compile, about 4 minutes)
set -u -o pipefail
cd "$(dirname "$0")/.."
TINY=""
[ "${1:-}" = "--tiny" ] && TINY="--tiny"
PY=${PY:-python3}
OUT=${OUT:-/tmp/gpu-figures}
SITE=${SITE:-/tmp/site}
BUDGET=${BUDGET_S:-300}
PARTS=${PARTS:-model 8gb speed}
export BENCH_OUT=${BENCH_OUT:-/tmp/lora-bench}
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 PYTHONWARNINGS=ignore
mkdir -p "$OUT" "$BENCH_OUT"
exec > >(tee -a "$OUT/gpu_figures.log") 2>&1
T0=$(date +%s)
FAILED=""
say() { echo "[$(date +%H:%M:%S) +$(($(date +%s) - T0))s] $*"; }
# seconds for the next part: what is left of the budget, at most $1, at least 30
limit() {
    local left=$((BUDGET - ($(date +%s) - T0)))
    ((left > $1)) && left=$1
    ((left < 30)) && left=30
    echo $left
}
part() { # name, seconds, command...
    local name=$1 seconds=$2
    shift 2
    say "== $name (at most ${seconds} s)"
    timeout --kill-after=15 "$seconds" "$@"
    local rc=$?
    if [ $rc -ne 0 ]; then
        FAILED="$FAILED $name(rc=$rc)"
        say "!! $name failed (rc=$rc); going on"
    else
        say "   $name done"
    fi
    return $rc
}

if [ -n "$TINY" ]; then
    # a CPU check: small photos, few steps, the GPU's precision
    EIGHT=(--tiny --images 2 --photo 600x400 --warmup 1 --steps 2)
    SPEED=(--tiny --images 2 --photo 600x400 --warmup 1 --steps 2 --precision bf16)
else
    export BENCH_THREADS=${BENCH_THREADS:-8} # CPU threads per run, the same on both sides (loading, decode)
    EIGHT=(--warmup 2 --steps 4)
    SPEED=(--warmup 2 --steps 8)
fi

# 0. wheels and versions. WHEELS: install (the GPU run's default), dry (--tiny's default: this machine's
# Python is not the GPU's, so install for 3.12 into $SITE to check the set, import nothing from it) or skip;
# WHEELS_DIR (default .whl) lets a CPU check install wheels built for its own Python.
WHEELS_DIR=${WHEELS_DIR:-.whl}
WHEELS=${WHEELS:-$([ -n "$TINY" ] && echo dry || echo install)}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if ! ls "$WHEELS_DIR"/*.whl >/dev/null 2>&1 || [ "$WHEELS" = skip ]; then
    say "no wheels installed ($WHEELS_DIR, WHEELS=$WHEELS): using the installed packages"
elif [ "$WHEELS" = dry ]; then
    part wheels 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 "$WHEELS_DIR"/*.whl
else
    part wheels 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "$WHEELS_DIR"/*.whl
    export PYTHONPATH="$SITE:$PYTHONPATH"
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version \
    --format=csv,noheader
part env 120 "$PY" - "$OUT/env.json" <<'PY'
import importlib, json, sys
from importlib.metadata import version
import torch
out = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
       "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
for name in ("diffusers", "transformers", "peft", "accelerate", "safetensors", "huggingface-hub", "pydantic",
             "bitsandbytes", "tokenizers", "numpy", "ImageHash"):
    try:
        out[name] = version(name)
    except Exception as exc:
        out[name] = f"missing ({exc.__class__.__name__})"
for module in ("lora_scripts.train.run", "lora_scripts.doctor.run", "bench.sdxl_bare", "bench.sdxl_8gb"):
    importlib.import_module(module)  # what the runs import, before any of them starts
peft = tuple(int(x) for x in out["peft"].split(".")[:2])
out["peft_in_pyproject_range"] = (0, 17) <= peft < (0, 22)
print(json.dumps(out))
json.dump(out, open(sys.argv[1], "w"), indent=1)
PY

# 1. the model, once (the other parts would build it too)
wanted() { [[ " $PARTS " == *" $1 "* ]]; }
results="$BENCH_OUT/results/$([ -n "$TINY" ] && echo tiny || echo real)"
rm -f "$results"/sdxl_8gb.json "$results"/sdxl_speed.json "$results"/generation-compile.json # an earlier
# run's never pass for this one's
wanted model && part model "$(limit 240)" "$PY" -m bench.sdxl_model $TINY
# 2. the 8 GB recipe
wanted 8gb && part 8gb "$(limit 200)" "$PY" -m bench.sdxl_8gb "${EIGHT[@]}"
# 3. trainer vs bare, rounds while the budget lasts (a round is 4 runs; each run is saved as it ends)
if wanted speed; then
    left=$(limit 100000)
    part speed "$left" "$PY" -m bench.sdxl_speed "${SPEED[@]}" --rounds 2 --budget-s $((left - 20))
fi

# 4. the catalogue job with compile: true against the bare diffusers loop; it prints the job's steady rate
# after its first (compiling) batch, to set against the uncompiled job's 2.46 images/s (docs/catalogue.md)
wanted compile && part compile "$(limit 300)" "$PY" -m bench.generation --rounds 1 --items 12 --compile $TINY

cp "$results"/sdxl_8gb.json "$results"/sdxl_speed.json "$results"/generation-compile.json "$OUT"/ 2>/dev/null
say "== summary (${FAILED:-nothing failed}); results in $OUT: $(ls "$OUT" | tr '\n' ' ')"
"$PY" -m bench.gpu_summary $TINY
say "done"
sleep 1 # let tee write the last lines
