#!/usr/bin/env bash
# Cross-builds forecourt-agent for aarch64 station PCs on a Debian 12 x86_64 machine, without
# docker: Debian's aarch64 cross gcc, and an arm64 OpenCV sysroot unpacked from Debian's arm64
# packages. Idempotent: each step is skipped when already done.
#
#   scripts/build-aarch64.sh           build target/aarch64-unknown-linux-gnu/release/forecourt-agent
#                                      (or under $CARGO_TARGET_DIR) and print its ELF header and NEEDED
#   scripts/build-aarch64.sh --smoke   the same, then run it under qemu-aarch64-static with the arm64
#                                      run-time libraries, the aarch64 libonnxruntime.so and the models
#
# Why a sysroot and not `apt-get install libopencv-*-dev:arm64`: on Debian 12 the arm64
# libopencv-imgcodecs406 needs libgdal32:arm64 (and libopencv-imgcodecs-dev needs libgdcm-dev:arm64),
# which are not Multi-Arch: same and so cannot sit beside the amd64 ones that the native OpenCV
# (scripts/setup.sh) needs: apt would remove the native imgcodecs/videoio. So the arm64 OpenCV
# parts are only unpacked under .cache/aarch64/, nothing arm64 is installed on this machine.
# In a clean build image (cross.toml) there is no native OpenCV and the :arm64 -dev packages install.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

smoke=0
for a in "$@"; do
  case "$a" in
    --smoke) smoke=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown argument: $a (see --help)" >&2; exit 2 ;;
  esac
done

TARGET=aarch64-unknown-linux-gnu
# The OpenCV modules the agent links (the opencv crate's features), as in .cargo/config.toml.
OPENCV_MODULES=(core imgproc imgcodecs videoio)
# ONNX Runtime: the same version as scripts/setup.sh, from the PyPI wheel for aarch64 (smoke test
# only; the build links nothing of it, ort uses load-dynamic).
ORT_VERSION=$(sed -n 's/^ORT_VERSION=//p' scripts/setup.sh)
declare -A ORT_AARCH64_WHEEL_SHA256=(
  [1.31.1]=da05378364c44d4407e463982d2bf8d5e4cfea873283757e48beeb41df97b7f3
)

cache="$root/.cache/aarch64"
sysroot="$cache/sysroot"      # arm64 OpenCV headers and libraries, for the build
rootfs="$cache/rootfs"        # arm64 run-time closure of those libraries, for --smoke
target_dir=${CARGO_TARGET_DIR:-$root/target}
bin="$target_dir/$TARGET/release/forecourt-agent"

step() { printf '\n== build-aarch64: %s\n' "$*" >&2; }
sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
# apt-get download as root cannot hand the file to the _apt user; say so instead of warning.
apt_dl_opts=(); [ "$(id -u)" = 0 ] && apt_dl_opts=(-o APT::Sandbox::User=root)

step "apt: arm64 architecture, aarch64 cross compiler"
need_update=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "adding dpkg architecture arm64" >&2
  $sudo_ dpkg --add-architecture arm64
  need_update=1
fi
host_pkgs=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu clang libclang-dev)
((smoke)) && host_pkgs+=(qemu-user-static)
missing=()
for p in "${host_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
apt-cache show --no-all-versions libopencv-core406:arm64 >/dev/null 2>&1 || need_update=1
if ((need_update || ${#missing[@]})); then
  $sudo_ apt-get update -qq
fi
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "all present" >&2
fi

step "Rust target $TARGET"
# rustup's standard library for the target; the toolchain itself is the machine's.
command -v rustup >/dev/null || { echo "rustup is needed to add the $TARGET target" >&2; exit 1; }
if rustup target list --installed | grep -qx "$TARGET"; then
  echo "installed" >&2
else
  rustup target add "$TARGET"
fi

# deb_name PKG: the file name `apt-get download PKG:arm64` gives for the candidate version.
deb_name() {
  local v
  v=$(apt-cache show --no-all-versions "$1:arm64" | sed -n 's/^Version: //p' | head -1)
  [ -n "$v" ] || { echo "no arm64 candidate for $1" >&2; exit 1; }
  echo "${1}_${v//:/%3a}_arm64.deb"
}

# unpack DIR DEBDIR DEB...: dpkg-deb -x each DEB into DIR, unless DIR already holds exactly them.
unpack() {
  local dir=$1 debdir=$2; shift 2
  local want; want=$(printf '%s\n' "$@" | sort)
  if [ -f "$dir/.debs" ] && [ "$(cat "$dir/.debs")" = "$want" ]; then
    echo "$dir: up to date ($# packages)" >&2
    return
  fi
  rm -rf "$dir"; mkdir -p "$dir"
  local d
  for d in "$@"; do dpkg-deb -x "$debdir/$d" "$dir"; done
  echo "$want" > "$dir/.debs"
  echo "$dir: unpacked $# packages" >&2
}

step "arm64 OpenCV sysroot (.cache/aarch64/sysroot)"
debs="$cache/debs"; mkdir -p "$debs"
sys_debs=()
for m in "${OPENCV_MODULES[@]}"; do
  for p in "libopencv-$m-dev" "libopencv-${m}406"; do
    f=$(deb_name "$p")
    if [ ! -s "$debs/$f" ]; then
      (cd "$debs" && apt-get download -qq "${apt_dl_opts[@]}" "$p:arm64")
    fi
    sys_debs+=("$f")
  done
done
unpack "$sysroot" "$debs" "${sys_debs[@]}"

step "cargo build --release --target $TARGET -p agent --bin forecourt-agent"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
# These override the x86_64 values that .cargo/config.toml's [env] gives the native build.
OPENCV_LINK_LIBS=$(printf 'opencv_%s,' "${OPENCV_MODULES[@]}"); export OPENCV_LINK_LIBS=${OPENCV_LINK_LIBS%,}
export OPENCV_LINK_PATHS="$sysroot/usr/lib/aarch64-linux-gnu"
export OPENCV_INCLUDE_PATHS="$sysroot/usr/include/opencv4,$sysroot/usr/include/aarch64-linux-gnu/opencv4"
# The sysroot holds only OpenCV, not the libraries OpenCV itself needs (gdal, ffmpeg, ...): do not
# let the linker look for those. The agent's own symbols are still all checked; the station's
# Debian packages bring OpenCV's dependencies.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-Wl,--allow-shlib-undefined"
start=$(date +%s)
cargo build --release --target "$TARGET" -p agent --bin forecourt-agent
echo "cargo build: $(( $(date +%s) - start )) s" >&2

step "result"
echo "$bin" >&2
file "$bin" 2>/dev/null || true
if ! aarch64-linux-gnu-readelf -h "$bin" | grep -q 'Machine:.*AArch64'; then
  echo "unexpected: $bin is not an AArch64 executable" >&2; exit 1
fi
dynamic=$(aarch64-linux-gnu-readelf -d "$bin")
grep -E 'NEEDED|RPATH|RUNPATH' <<<"$dynamic"
if grep -q libonnxruntime <<<"$dynamic"; then
  echo "unexpected: libonnxruntime is linked (ort should use load-dynamic)" >&2; exit 1
fi

((smoke)) || exit 0

step "arm64 run-time closure of OpenCV (.cache/aarch64/rootfs)"
# A private apt state (empty dpkg status, arm64 only) resolves what a bare arm64 Debian 12 would
# install, and downloads it without touching this machine's packages.
apt_private=(-o APT::Architecture=arm64 -o APT::Architectures::=arm64
  -o Dir::State::status="$cache/apt-status" -o Dir::Cache::archives="$cache/debs-runtime"
  -o Debug::NoLocking=1 "${apt_dl_opts[@]}")
mkdir -p "$cache/debs-runtime/partial"; : > "$cache/apt-status"
rt_pkgs=(); for m in "${OPENCV_MODULES[@]}"; do rt_pkgs+=("libopencv-${m}406"); done
# --print-uris leaves out what is already downloaded: list against an empty archive folder.
mkdir -p "$cache/debs-none/partial"
mapfile -t rt_debs < <(apt-get "${apt_private[@]}" -o Dir::Cache::archives="$cache/debs-none" \
  --print-uris -y --no-install-recommends \
  install "${rt_pkgs[@]}" 2>/dev/null | sed -n "s/^'[^']*' \([^ ]*\.deb\) .*/\1/p")
((${#rt_debs[@]})) || { echo "apt resolved no arm64 run-time packages" >&2; exit 1; }
apt-get -qq "${apt_private[@]}" --download-only -y --no-install-recommends install "${rt_pkgs[@]}" >/dev/null
unpack "$rootfs" "$cache/debs-runtime" "${rt_debs[@]}"
# qemu-user 7.2 shows the guest the host's x86 /proc/cpuinfo, on which ONNX Runtime's cpuinfo
# crashes (SIGSEGV); qemu looks paths up under QEMU_LD_PREFIX first, so give it an arm64 one.
mkdir -p "$rootfs/proc"
for i in 0 1; do
  printf 'processor\t: %d\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\n' "$i"
  printf 'CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n'
done > "$rootfs/proc/cpuinfo"

step "aarch64 libonnxruntime.so $ORT_VERSION"
want=${ORT_AARCH64_WHEEL_SHA256[$ORT_VERSION]:-}
[ -n "$want" ] || { echo "no pinned aarch64 onnxruntime wheel for $ORT_VERSION: add its sha256 here" >&2; exit 1; }
whl="$root/.cache/wheels/onnxruntime-$ORT_VERSION-cp311-cp311-manylinux_2_28_aarch64.whl"
if [ ! -s "$whl" ]; then
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_aarch64 -d "$root/.cache/wheels" "onnxruntime==$ORT_VERSION"
fi
got=$(sha256sum "$whl" | cut -d' ' -f1)
[ "$got" = "$want" ] || { echo "aarch64 onnxruntime wheel sha256 mismatch: $got != $want" >&2; exit 1; }
# The agent looks for libonnxruntime.so beside its binary first: a run folder keeps the x86_64
# vendor/onnxruntime of this checkout out of the way.
run="$cache/run"; mkdir -p "$run/vendor/onnxruntime"
unzip -o -q -j "$whl" "onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" -d "$run/vendor/onnxruntime"
ln -sf "libonnxruntime.so.$ORT_VERSION" "$run/vendor/onnxruntime/libonnxruntime.so"
cp -f "$bin" "$run/forecourt-agent"

step "smoke test under qemu-aarch64-static"
export QEMU_LD_PREFIX="$rootfs"
# Some libraries sit outside the multiarch folder, or behind alternatives links that dpkg-deb -x
# does not make (blas, lapack).
export QEMU_SET_ENV=LD_LIBRARY_PATH=/lib/aarch64-linux-gnu:/usr/lib/aarch64-linux-gnu:/usr/lib:/usr/lib/aarch64-linux-gnu/blas:/usr/lib/aarch64-linux-gnu/lapack
qemu() { qemu-aarch64-static "$run/forecourt-agent" "$@"; }
qemu version
qemu check-config config/demo.toml
manifest=${SMOKE_MANIFEST:-$root/../shared/plates/dev/manifest.csv}
if [ -f models/clp_det.onnx ] && [ -f "$manifest" ]; then
  # Two crops and two scenes through the real models (about 10 s an image under qemu).
  mdir=$(cd "$(dirname "$manifest")" && pwd)
  awk -F, -v d="$mdir/" 'NR == 1 { print; next }
    $2 == "crop" && c < 2 { c++; print d $0 }
    $2 == "scene" && s < 2 { s++; print d $0 }' "$manifest" > "$run/manifest.csv"
  qemu eval "$run/manifest.csv" --models "$root/models"
else
  echo "no models or labelled manifest ($manifest): skipping the plate read" >&2
fi
