#!/usr/bin/env bash
# The GPU measurements of issue 14, prepared to fit one device session (15 minutes of device time, at most
# 10 minutes a command; /work/.library/device/README.md).
#
#   bash tools/gpu_session.sh prepare   # here, after the last commit: POT for the device's Python 3.12 into .whl/site
#   device run: command "bash tools/gpu_session.sh run", carry [".whl"], timeout_s 600
#
# prepare: the device machine has torch, numpy, scipy, pandas, scikit-learn, matplotlib, seaborn, tqdm
# and threadpoolctl, but not POT (reports 1 and the leaderboard need ot.gaussian). POT's wheel is 33 MB,
# 175 MB unpacked, nearly all of it one extension, ot/bsp (BSP-OT, which paramspace never uses); with the
# 47 MiB of tracked files it would not fit the 64 MiB that travel. So POT is installed for cp312 into
# .whl/site (ignored by git: /.whl/ in .gitignore) and ot/bsp is replaced by a stub that raises if called.
#
# run: every report's book profile on the GPU, report 2's paper profile and the three GPU habits: 10 cells,
# all at once (tools/bench_gpu.py --parallel, one torch thread each), each stopped at 420 s, all within
# 480 s. The CPU side is the 2-core machine's `runs` table in BENCHMARKS.md. The table, the JSON (rewritten
# after every cell, so a command killed at its limit still leaves it) and the log land in $OUT; back here,
# put the table into BENCHMARKS.md with
#   .venv/bin/python -c 'import sys; sys.path.insert(0, "tools"); from benchmarks_md import write_section; write_section("gpu", open(sys.argv[1]).read())' FILE
set -uo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
prepare)
  set -e
  POT=$(grep -i '^pot==' requirements.lock)
  rm -rf .whl/site && mkdir -p .whl/site
  python3 -m pip install -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --no-compile --target .whl/site "$POT"
  rm -f .whl/site/ot/bsp/bsp_wrap*.so .whl/site/ot/bsp/bsp_ot.py
  cat > .whl/site/ot/bsp/__init__.py <<'PY'
"""BSP-OT is left out of this copy of POT (tools/gpu_session.sh prepare): its extension alone is 175 MB,
more than the device machine's transfer allows. paramspace does not use it; calling it raises."""

__all__ = ["compute_bspot_bijection", "merge_bijections"]


def compute_bspot_bijection(*args, **kwargs):
    raise ImportError("BSP-OT is not in this copy of POT (tools/gpu_session.sh prepare left it out)")


merge_bijections = compute_bspot_bijection
PY
  # the device gets the working tree without .git: the commit (and whether the tree differed from it) goes along
  dirty=$(git status --porcelain --untracked-files=normal | grep -v ' \.whl/' || true)
  echo "$(git rev-parse --short=12 HEAD)${dirty:+ plus uncommitted changes}" > .whl/COMMIT
  # what travels: tracked and untracked-not-ignored files, and the carried .whl; at most 64 MiB
  size=$( { git ls-files -z; git ls-files -z --others --exclude-standard; find .whl -type f -print0; } \
    | du -cb --files0-from=- | tail -1 | cut -f1)
  echo "$(cat .whl/COMMIT); the tree that travels: $((size / 1048576)) MiB of at most 64"
  if (( size > 64 * 1048576 )); then echo "too large for the device machine's transfer" >&2; exit 1; fi
  ;;
run)
  OUT=${OUT:-/tmp/gpu_session}
  mkdir -p "$OUT"
  [[ -d .whl/site/ot ]] || { echo "no .whl/site: run 'bash tools/gpu_session.sh prepare' here and carry .whl" >&2; exit 2; }
  export PYTHONPATH=$PWD/.whl/site:$PWD/src PYTHONUNBUFFERED=1 PARAMSPACE_COMMIT="$(cat .whl/COMMIT 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia-smi.csv" 2>&1
  # torch is a must; POT only for reports 1 and the leaderboard, whose cells would show its error
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 \
    | tee "$OUT/log.txt" || exit 1
  python3 -c "import ot; print('ot', ot.__version__)" 2>&1 | tail -1 | tee -a "$OUT/log.txt"
  python3 tools/bench_gpu.py --parallel 10 --cpu-threads 1 --cell-timeout 420 --budget 480 \
    --json "$OUT/bench_gpu.json" --markdown "$OUT/bench_gpu.md" 2>&1 | tee -a "$OUT/log.txt"
  ;;
*)
  echo "usage: $0 prepare|run" >&2
  exit 2
  ;;
esac
