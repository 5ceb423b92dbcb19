#!/usr/bin/env bash
# Builds target/debian/forecourt-agent_<version>_<arch>.deb from the release build, the ONNX
# Runtime library and the models that scripts/setup.sh fetched. Plain dpkg-deb: no extra tools.
#   usr/bin/forecourt-agent, usr/bin/dart-pump-sim
#   usr/lib/forecourt-agent/libonnxruntime.so(.VERSION)
#   lib/systemd/system/forecourt-agent.service
#   etc/forecourt-agent/agent.toml (conffile; the documented example to edit)
#   usr/share/forecourt-agent/models/ (copied to /var/lib/forecourt-agent/models by postinst)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

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
install -m 0644 README.md docs/mqtt.md docs/fleet.md "$stage/usr/share/doc/forecourt-agent/"

cat > "$stage/DEBIAN/control" <<CONTROL
Package: forecourt-agent
Version: $version
Architecture: $arch
Maintainer: Forecourt Agent maintainers <forecourt@localhost>
Section: net
Priority: optional
Depends: libopencv-videoio406, libopencv-imgcodecs406, libopencv-imgproc406, libopencv-core406, adduser
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
