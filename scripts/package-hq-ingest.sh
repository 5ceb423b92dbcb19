#!/usr/bin/env bash
# Builds target/debian/hq-ingest_<version>_<arch>.deb, HQ's ingester, shipped apart from the
# station's package (it runs at HQ): from the release build, with dpkg-deb; the shared-library
# part of Depends comes from dpkg-shlibdeps on the staged binary.
#   usr/bin/hq-ingest
#   lib/systemd/system/hq-ingest@.service (one instance per worker: hq-ingest@1 reads /etc/hq-ingest/1.toml)
#   etc/hq-ingest/1.toml (conffile: worker 1's file, config/hq-ingest.toml)
#   usr/share/doc/hq-ingest/ (docs/fleet.md, docs/mqtt.md)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/deb-shlibs.sh

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
out="$root/target/debian"
stage="$out/hq-ingest-stage"
rm -rf "$stage"
mkdir -p "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/hq-ingest" \
  "$stage/usr/share/doc/hq-ingest"

[ -x target/release/hq-ingest ] || { echo "target/release/hq-ingest missing: run scripts/setup.sh" >&2; exit 1; }
install -m 0755 target/release/hq-ingest "$stage/usr/bin/hq-ingest"
install -m 0644 systemd/hq-ingest@.service "$stage/lib/systemd/system/"
install -m 0644 config/hq-ingest.toml "$stage/etc/hq-ingest/1.toml"
install -m 0644 docs/fleet.md docs/mqtt.md "$stage/usr/share/doc/hq-ingest/"

shlibs=$(shlib_depends hq-ingest "$stage/usr/bin/hq-ingest")

cat > "$stage/DEBIAN/control" <<CONTROL
Package: hq-ingest
Version: $version
Architecture: $arch
Maintainer: Forecourt Agent maintainers <forecourt@localhost>
Section: net
Priority: optional
Depends: $shlibs
Recommends: postgresql
Description: HQ ingester for Forecourt Agent stations
 Workers in an MQTT 5 shared subscription on every station's events: each writes them into
 PostgreSQL in idempotent batches and acknowledges a message only after the commit that holds
 it; one at a time repairs sequence gaps by asking the station to resend. See
 /usr/share/doc/hq-ingest/fleet.md.
CONTROL
echo "/etc/hq-ingest/1.toml" > "$stage/DEBIAN/conffiles"

deb="$out/hq-ingest_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$stage" "$deb" >/dev/null
echo "$deb"
