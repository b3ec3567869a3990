#!/usr/bin/env bash
# ProxyDHCP offers per second, pxeops against dnsmasq in proxy mode, side
# by side in one run: pxestorm sends relayed PXE DISCOVERs at fixed rates
# from one network namespace to the server in another and counts offers.
# Both servers run without per-packet logging. Root only; needs dnsmasq
# and the ipxe package.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
srv=bd-srv cli=bd-cli
cleanup() { ip netns pids $srv 2>/dev/null | xargs -r kill 2>/dev/null; ip netns del $srv 2>/dev/null; ip netns del $cli 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/pxeops" ./cmd/pxeops
go build -o "$work/pxestorm" ./internal/loadtest/cmd/pxestorm
go run ./internal/gentree/cmd/gentree -groups 10000 -profiles 100 "$work/fleet"
ip netns add $srv; ip netns add $cli
ip -n $srv link set lo up; ip -n $cli link set lo up
ip link add eth-bd type veth peer name eth0 netns $srv
ip link set eth-bd netns $cli
ip -n $srv addr add 10.88.0.1/24 dev eth0; ip -n $srv link set eth0 up
ip -n $cli addr add 10.88.0.2/24 dev eth-bd; ip -n $cli link set eth-bd up
measure() { ip netns exec $cli "$work/pxestorm" -server 10.88.0.1 -local 10.88.0.2 -rate "$1" -duration 5s; }
for rate in ${RATES:-5000 10000 20000 40000}; do
  ip netns exec $srv dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 --interface=eth0 --bind-interfaces \
    --dhcp-range=10.88.0.0,proxy --pxe-service=x86-64_EFI,pxeops,snponly --quiet-dhcp --log-facility=/dev/null &
  pid=$!; sleep 1
  echo "dnsmasq at $rate/s: $(measure $rate)"
  kill $pid; wait $pid 2>/dev/null || true
  ip netns exec $srv "$work/pxeops" serve --source "$work/fleet" --proxy-dhcp --interface eth0 --http-addr :8080 --log-level warn 2>/dev/null &
  pid=$!
  for _ in $(seq 100); do ip netns exec $srv curl -sf http://127.0.0.1:8080/readyz >/dev/null && break; sleep 0.2; done
  echo "pxeops  at $rate/s: $(measure $rate)"
  kill $pid; wait $pid 2>/dev/null || true
done
