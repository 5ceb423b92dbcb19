#!/usr/bin/env bash
# Builds target/debian/forecourt-agent_<version>_<arch>.deb from the release build, the ONNX
# Runtime library and the models that scripts/setup.sh fetched, with dpkg-deb; the shared-library
# part of Depends comes from dpkg-shlibdeps (dpkg-dev, installed by scripts/setup.sh) run on the
# staged binaries, plus adduser for postinst.
#   usr/bin/forecourt-agent, usr/bin/dart-pump-sim
#   usr/lib/forecourt-agent/libonnxruntime.so(.VERSION)
#   lib/systemd/system/forecourt-agent.service
#   etc/forecourt-agent/agent.toml (conffile; the documented example to edit)
#   usr/share/forecourt-agent/models/ (copied to /var/lib/forecourt-agent/models by postinst)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/deb-shlibs.sh

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
out="$root/target/debian"
stage="$out/stage"
rm -rf "$stage"
mkdir -p "$stage/DEBIAN" "$stage/usr/bin" "$stage/usr/lib/forecourt-agent" \
  "$stage/lib/systemd/system" "$stage/etc/forecourt-agent" \
  "$stage/usr/share/forecourt-agent/models" "$stage/usr/share/doc/forecourt-agent"

for bin in forecourt-agent dart-pump-sim; do
  [ -x "target/release/$bin" ] || { echo "target/release/$bin missing: run scripts/setup.sh" >&2; exit 1; }
  install -m 0755 "target/release/$bin" "$stage/usr/bin/$bin"
done
ort=$(readlink -f vendor/onnxruntime/libonnxruntime.so)
install -m 0644 "$ort" "$stage/usr/lib/forecourt-agent/$(basename "$ort")"
ln -s "$(basename "$ort")" "$stage/usr/lib/forecourt-agent/libonnxruntime.so"
install -m 0644 systemd/forecourt-agent.service "$stage/lib/systemd/system/"
install -m 0644 config/agent.toml "$stage/etc/forecourt-agent/agent.toml"
for f in clp_det.onnx clp_v2_c_rec.onnx clp_dict.txt MANIFEST; do
  install -m 0644 "models/$f" "$stage/usr/share/forecourt-agent/models/$f"
done
install -m 0644 README.md docs/mqtt.md docs/fleet.md docs/commissioning.md "$stage/usr/share/doc/forecourt-agent/"
install -m 0644 -D docs/zones-example/cam1.png "$stage/usr/share/doc/forecourt-agent/zones-example/cam1.png"

# Depends: what the staged binaries link (scripts/deb-shlibs.sh), then adduser, which postinst
# runs. ONNX Runtime is not a NEEDED entry (ort dlopens it at run time), so it is not looked up;
# -l names its bundled folder anyway, so that if it ever were linked it would count as the
# package's own private library instead of failing the build.
shlibs=$(shlib_depends forecourt-agent -l"$stage/usr/lib/forecourt-agent" \
  "$stage/usr/bin/forecourt-agent" "$stage/usr/bin/dart-pump-sim")

cat > "$stage/DEBIAN/control" <<CONTROL
Package: forecourt-agent
Version: $version
Architecture: $arch
Maintainer: Forecourt Agent maintainers <forecourt@localhost>
Section: net
Priority: optional
Depends: $shlibs, adduser
Description: petrol station agent: plates, pumps and sales to HQ
 Reads the forecourt cameras, recognises licence plates with ONNX models, polls the fuel
 dispensers over serial (Wayne DART), ties every sale to the plate of the car being fuelled,
 keeps everything in SQLite until HQ has it and syncs to HQ over MQTT.
CONTROL
echo "/etc/forecourt-agent/agent.toml" > "$stage/DEBIAN/conffiles"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$stage/DEBIAN/"

deb="$out/forecourt-agent_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$stage" "$deb" >/dev/null
echo "$deb"
