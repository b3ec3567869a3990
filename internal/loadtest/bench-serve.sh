#!/usr/bin/env bash
# Benchmarks of `pxeops serve` on loopback, for BENCHMARKS.md:
#   1. /ipxe?mac= with 10,000 groups: wrk (closed loop, saturation) and
#      loadgen (open loop at a fixed rate), with /healthz as the baseline
#      of the same server in the same run;
#   2. /assets/ for a 100 MB file, pxeops and nginx alternating in rounds.
# Needs wrk and nginx (apt-get install wrk nginx-light). Loopback only.
# PXEOPS_BASELINE=/path/to/an/older/pxeops also serves the fleet from that
# binary on :18082; the /ipxe runs then alternate between the two servers.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
chmod 755 "$work" # nginx's workers run as www-data
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; [ -f "$work/nginx.pid" ] && nginx -c "$work/nginx.conf" -s stop 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

go build -o "$work/pxeops" ./cmd/pxeops
go build -o "$work/loadgen" ./internal/loadtest/cmd/loadgen
go run ./internal/gentree/cmd/gentree -groups 10000 -profiles 100 "$work/fleet"
mkdir -p "$work/assets" "$work/www"
head -c 100M /dev/urandom > "$work/assets/big.img"
cp "$work/assets/big.img" "$work/www/big.img"

"$work/pxeops" serve --source "$work/fleet" --http-addr 127.0.0.1:18080 --server-url http://10.0.0.1:8080 \
  --assets-dir "$work/assets" 2>/dev/null &
pids+=($!)
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 1024; }
http { access_log off; sendfile on; tcp_nopush on; server { listen 127.0.0.1:18081; root $work/www; } }
CONF
nginx -c "$work/nginx.conf"
ipxe_ports=18080
if [ -n "${PXEOPS_BASELINE:-}" ]; then
  "$PXEOPS_BASELINE" serve --source "$work/fleet" --http-addr 127.0.0.1:18082 --server-url http://10.0.0.1:8080 2>/dev/null &
  pids+=($!)
  ipxe_ports="18080 18082"
  for _ in $(seq 50); do curl -sf http://127.0.0.1:18082/readyz >/dev/null && break; sleep 0.2; done
fi
for _ in $(seq 50); do curl -sf http://127.0.0.1:18080/readyz >/dev/null && break; sleep 0.2; done
for u in 18081/big.img 18080/assets/big.img; do
  got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "http://127.0.0.1:$u")
  [ "$got" = "200 104857600" ] || { echo "GET $u: $got, want 200 104857600" >&2; exit 1; }
done

echo "### /ipxe, wrk closed loop (1 thread), 10,000 groups"
for c in 4 16; do
  for port in $ipxe_ports; do
    echo "-- $c connections, :$port"
    wrk -t1 -c$c -d10s --latency -s internal/loadtest/ipxe.lua http://127.0.0.1:$port | grep -E "Requests/sec| 50%| 99%"
  done
done
echo "### open loop at fixed rates, 8 connections: /ipxe vs /healthz"
for rate in 10000 20000; do
  for port in $ipxe_ports; do
    for path in '/ipxe?mac=%s' /healthz; do
      echo "-- $path at $rate req/s, :$port"
      "$work/loadgen" -addr 127.0.0.1:$port -path "$path" -rate $rate -duration 10s -conns 8 | tail -2
    done
  done
done
echo "### /assets/ 100 MB file, wrk 1 thread 4 connections, alternating rounds"
for round in 1 2 3; do
  for target in nginx:18081/big.img pxeops:18080/assets/big.img; do
    echo "-- ${target%%:*} round $round: $(wrk -t1 -c4 -d8s "http://127.0.0.1:${target#*:}" | grep Transfer/sec)"
  done
done
