#!/usr/bin/env bash
# A storm of simulated machines booting at once (DHCP → 4011 → TFTP →
# HTTP) against pxeops --proxy-dhcp, between two network namespaces joined
# by a veth pair. Root only; needs the ipxe package for snponly.efi.
# Usage: bench-storm.sh [CLIENTS]   (default 500)
set -euo pipefail
cd "$(dirname "$0")/../.."
clients=${1:-500}
work=$(mktemp -d)
srv=storm-srv cli=storm-cli
cleanup() { ip netns pids $srv 2>/dev/null | xargs -r kill; ip netns del $srv 2>/dev/null; ip netns del $cli 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/pxeops" ./cmd/pxeops
go build -o "$work/pxestorm" ./internal/loadtest/cmd/pxestorm
go run ./internal/gentree/cmd/gentree -groups 10000 -profiles 100 "$work/fleet"
ip netns add $srv; ip netns add $cli
ip -n $srv link set lo up; ip -n $cli link set lo up
ip link add eth-storm type veth peer name eth0 netns $srv
ip link set eth-storm netns $cli
ip -n $srv addr add 10.88.0.1/24 dev eth0; ip -n $srv link set eth0 up
ip -n $cli addr add 10.88.0.2/24 dev eth-storm; ip -n $cli link set eth-storm up
ip netns exec $srv "$work/pxeops" serve --source "$work/fleet" --proxy-dhcp --interface eth0 --http-addr :8080 --log-level warn &
for _ in $(seq 100); do ip netns exec $srv curl -sf http://127.0.0.1:8080/readyz >/dev/null && break; sleep 0.2; done
ip netns exec $cli "$work/pxestorm" -server 10.88.0.1 -local 10.88.0.2 -clients "$clients"
echo "server side:"
ip netns exec $srv curl -s http://127.0.0.1:8080/metrics | grep -E '^pxeops_(dhcp_packets_total|tftp_transfers_total)' || true
