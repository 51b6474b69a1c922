#!/usr/bin/env bash
# Download bench/gpu_wheels.txt's wheels into .whl/ (git-ignored through .git/info/exclude) for the GPU
# machine (Python 3.12, x86-64, no package index), and slim bitsandbytes to its CUDA 13.0 + CPU libraries.
# usage: bash bench/gpu_wheels.sh            (from the repository root; PIP=.venv/bin/pip by default)
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-.venv/bin/pip}
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
mkdir -p .whl
platforms=()
for p in manylinux_2_35 manylinux_2_34 manylinux_2_31 manylinux_2_28 manylinux_2_27 manylinux_2_24 \
         manylinux_2_17 manylinux2014 manylinux1; do platforms+=(--platform "${p}_x86_64"); done
grep -v '^#' bench/gpu_wheels.txt | grep . | xargs "$PIP" download -q --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp "${platforms[@]}" -d .whl
python3 - <<'PY'
import glob, os, zipfile
KEEP = ("libbitsandbytes_cuda130.so", "libbitsandbytes_cpu.so")
for path in glob.glob(".whl/bitsandbytes-*.whl"):
    with zipfile.ZipFile(path) as src:
        names = src.namelist()
        drop = {n for n in names if n.endswith(".so") and os.path.basename(n).startswith("libbitsandbytes_")
                and os.path.basename(n) not in KEEP}
        if not drop:
            continue
        tmp = path + ".tmp"
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
            for info in src.infolist():
                if info.filename in drop:
                    continue
                data = src.read(info)
                if info.filename.endswith(".dist-info/RECORD"):  # the dropped files leave the record too
                    lines = data.decode().splitlines()
                    data = ("\n".join(ln for ln in lines if ln.split(",")[0] not in drop) + "\n").encode()
                out.writestr(info, data)
    os.replace(tmp, path)
    print(f"{path}: dropped {len(drop)} libraries, {os.path.getsize(path) / 2**20:.1f} MiB")
PY
du -ch .whl/*.whl | tail -1
