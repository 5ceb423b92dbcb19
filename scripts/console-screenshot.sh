#!/usr/bin/env bash
# Regenerates docs/console-forecourt.png, the README's picture of the station console's live
# forecourt page: taken by the browser test (tests/console_browser.rs) at the moment the first
# sale of the demo station appears on its pump's tile (headless Chromium, 1280x900).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh >/dev/null
FORECOURT_SCREENSHOT="$root/docs/console-forecourt.png" \
  cargo test --release --test console_browser staff_log_in -- --nocapture
echo "wrote docs/console-forecourt.png"
