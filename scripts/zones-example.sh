#!/usr/bin/env bash
# Regenerates docs/zones-example/: what `forecourt-agent zones --snapshot` shows for the demo
# station (cam1.png: both lanes' zones and the plate boxes read in them; cam1.txt: the legend).
# The demo video starts with a car in each lane; 25 s of it are read.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
target/release/forecourt-agent zones --config config/demo.toml --snapshot docs/zones-example \
  --seconds 25 --width 640
