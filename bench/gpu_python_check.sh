#!/usr/bin/env bash
# On the GPU machine: the Python package on the CUDA engine (python/tests/test_cuda.py, plus the generation
# tests), with what scripts/gpu_pack_python.sh packed into .gpu/: the razor CLI and its libraries (gpu_pack.sh),
# the package with a CUDA extension built for the machine's python3 (.gpu/py/razor), pytest as wheels
# (.gpu/wheels) and the model in pieces. Pieces travel over consecutive calls (the transfer limit): each call
# stashes what it carried in /tmp/razor-gpu (kept while the machine stays warm); once every piece is there the
# tests run.   bench/gpu_python_check.sh [pytest args]
set -uo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
stash=/tmp/razor-gpu
mkdir -p "$stash"
cp -r .gpu/. "$stash"/ 2>/dev/null
echo "== gpu_python_check: stash holds $(ls "$stash"/model.part-* 2>/dev/null | wc -l) model pieces"
for need in razor py/razor wheels; do
  [[ -e "$stash/$need" ]] || { echo "== gpu_python_check: $need not carried yet"; exit 0; }
done
cat "$stash"/model.part-* > /tmp/razor-model.gguf
if [[ "$(sha256sum < /tmp/razor-model.gguf | cut -d' ' -f1)" != "$(cat "$stash/model.sha256" 2>/dev/null)" ]]; then
  echo "== gpu_python_check: model pieces incomplete so far"; exit 0
fi
[[ -f "$stash/model.razor-profile.json" ]] && cp "$stash/model.razor-profile.json" /tmp/razor-model.gguf.razor-profile.json

python3 --version
python3 -m pip install -q --no-index --find-links "$stash/wheels" --target /tmp/razor-pydeps pytest 2>&1 | tail -2
export PYTHONPATH="$stash/py:/tmp/razor-pydeps${PYTHONPATH:+:$PYTHONPATH}"
export LD_LIBRARY_PATH="$stash/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export RAZOR_TEST_MODEL=/tmp/razor-model.gguf RAZOR_BINARY="$stash/razor" RAZOR_HOME=/tmp/razor-home MPLBACKEND=Agg
chmod +x "$stash/razor"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import razor; print('razor', razor.__file__, 'cuda:', razor.built_with_cuda())" || exit 1
cd /tmp && timeout 400 python3 -m pytest -q -p no:cacheprovider -rs "${@:-$root/python/tests/test_cuda.py}" 2>&1 |
  tee "${OUT:-/tmp}/gpu_python_check.log"
exit "${PIPESTATUS[0]}"
