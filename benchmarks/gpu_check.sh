#!/usr/bin/env bash
# The one call a session lent a GPU machine makes (at most 8 minutes), from the repo root:
#   here, once:  bash benchmarks/gpu_prepare.sh      (wheels into .whl/, CIFAR-10 into .gpu/)
#   there:       run(command="bash benchmarks/gpu_check.sh", carry=[".whl", ".gpu"], timeout_s=540)
# That machine has CUDA and PyTorch but no package registry: nasblocks runs from the source
# tree (PYTHONPATH) and its missing dependencies come as wheels. It runs the gpu-marked tests
# and benchmarks/gpu_measure.py; the results land in $OUT (or /tmp/gpu_check).
# GPU_CHECK_ARGS passes flags to gpu_measure.py (e.g. "--device cpu --smoke" to exercise it here).
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${OUT:-/tmp/gpu_check}
mkdir -p "$RESULTS"
if ! python3 -c "import optuna, pydantic" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export NASBLOCKS_CACHE=/tmp/nasblocks-cache
DATA=/tmp/cifar10
if [ ! -d "$DATA/train" ]; then
    mkdir -p "$DATA"
    tar -xzf "${CIFAR_TARBALL:-.gpu/cifar10_jpg.tar.gz}" -C "$DATA"
fi
python3 -c "import torch, nasblocks; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
python3 -m pytest -q -m gpu tests -p no:cacheprovider 2>&1 | tee "$RESULTS/gpu_tests.log" | tail -5
python3 benchmarks/gpu_measure.py --data "$DATA" --out "$RESULTS" ${GPU_CHECK_ARGS:-} \
    2>&1 | tee "$RESULTS/gpu_measure.log" | tail -40
