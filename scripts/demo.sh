#!/usr/bin/env bash
# Runs the built-in demo station: a local mosquitto, simulated pumps with two fuelling points, the
# demo video, and the agent. Sales with plates are printed as they reach the broker. Runs until
# Ctrl-C, or for N seconds with --seconds N. --protocol picks where the sales come from: dart (the
# default: a DART line on a socat pty pair, config/demo.toml), ifsf-tcp (an IFSF dispenser node
# over TCP, config/demo-ifsf-tcp.toml) or ifsf-fdc (a controller's IFSF POS-FDC interface,
# config/demo-ifsf-fdc.toml).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

seconds=""
protocol="dart"
while (($#)); do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --protocol) protocol="$2"; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (try --seconds N or --protocol dart|ifsf-tcp|ifsf-fdc)" >&2; exit 2 ;;
  esac
done
case "$protocol" in
  dart|ifsf-tcp|ifsf-fdc) ;;
  *) echo "unknown protocol: $protocol (dart, ifsf-tcp or ifsf-fdc)" >&2; exit 2 ;;
esac

scripts/setup.sh

demo="$root/var/demo"
mkdir -p "$demo"
port=18830
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

cat > "$demo/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
CONF
if ! (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
  mosquitto -c "$demo/mosquitto.conf" > "$demo/mosquitto.log" 2>&1 &
  pids+=($!)
fi
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done

if [ "$protocol" = dart ]; then
  # Two ends of one virtual serial line: the simulator is the pumps, the agent is the bus master.
  rm -f "$demo/pump-sim.pty" "$demo/pump-agent.pty"
  socat pty,raw,echo=0,link="$demo/pump-sim.pty" pty,raw,echo=0,link="$demo/pump-agent.pty" 2>"$demo/socat.log" &
  pids+=($!)
  for _ in $(seq 50); do [ -e "$demo/pump-agent.pty" ] && [ -e "$demo/pump-sim.pty" ] && break; sleep 0.1; done
fi

# Show every sale as HQ receives it.
mosquitto_sub -h 127.0.0.1 -p $port -t 'forecourt/+/events/sale' -t 'forecourt/+/status' -v &
pids+=($!)

if [ "$protocol" = dart ]; then
  target/release/dart-pump-sim --port "$demo/pump-sim.pty" --scenario config/demo-scenario.toml \
    2>"$demo/pump-sim.log" &
  config=config/demo.toml
elif [ "$protocol" = ifsf-tcp ]; then
  # A dispenser node on the station LAN, played on loopback; the agent joins it watch-only.
  target/release/dart-pump-sim --protocol ifsf-tcp --listen 127.0.0.1:18486 \
    --scenario config/demo-scenario.toml 2>"$demo/pump-sim.log" &
  config=config/demo-ifsf-tcp.toml
else
  # A forecourt controller's FDC interface, played on loopback; the agent logs on watch-only.
  target/release/dart-pump-sim --protocol ifsf-fdc --listen 127.0.0.1:18471 --passphrase forecourt \
    --scenario config/demo-scenario.toml 2>"$demo/pump-sim.log" &
  config=config/demo-ifsf-fdc.toml
fi
pids+=($!)

cat >&2 <<MSG

Demo station running. Cars drive in on the video (var/demo/demo.mp4); the simulated pumps sell
fuel; the agent matches each sale to a plate and publishes it. Watch it from another terminal:
  mosquitto_sub -h 127.0.0.1 -p $port -t 'forecourt/#' -v
MSG
if [ "$config" = config/demo.toml ]; then
  cat >&2 <<MSG
Or in a browser, the station console: http://127.0.0.1:8080 (user demo, password forecourt-demo).
MSG
fi
cat >&2 <<MSG
Pump simulator log: var/demo/pump-sim.log. Stop with Ctrl-C.

MSG
args=(run --config "$config")
[ -n "$seconds" ] && args+=(--seconds "$seconds")
target/release/forecourt-agent "${args[@]}"
