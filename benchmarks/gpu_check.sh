#!/usr/bin/env bash
# The GPU checks of issue 16 in one go, for a session lent a CUDA machine (about 5 minutes on an H200):
#     benchmarks/gpu_check.sh
# the GPU benchmark section (3 repeats) written into a copy of docs/BENCHMARKS.md, then the tests that
# need a GPU or torch.compile. Outputs go to $OUT (the device tool's folder) or artifacts/gpu-check.
# Data: GZ_REAL_DATA or ../shared/data/galaxy-zoo-2014, else 1,000 synthetic galaxies (the benchmark
# repeats the crops to the 61,578 images of the Kaggle training set either way).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-artifacts/gpu-check}"
mkdir -p "$out"
status=0
{ nvidia-smi; python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } \
    > "$out/machine.txt" 2>&1
data="${GZ_REAL_DATA:-../shared/data/galaxy-zoo-2014}"
if [ ! -f "$data/training_solutions_rev1.csv" ]; then
    data="$(mktemp -d)/synthetic"
    python -m gzcore.cli synth --n 1000 --out "$data" > /dev/null || exit 1
fi
cp docs/BENCHMARKS.md "$out/BENCHMARKS.md"
python -m benchmarks.run --only gpu --repeats 3 --data "$data" --out "$out/BENCHMARKS.md" 2>&1 \
    | tee "$out/bench.log" || status=1
GZ_REAL_DATA="$data" python -m pytest -q -rs tests/test_train.py -k "gpu or compile" 2>&1 \
    | tee "$out/tests.log" || status=1
exit $status
