#!/usr/bin/env bash
# Network-boot benchmarks between two network namespaces joined by a veth
# pair: the server side at 10.88.0.1, pxestorm at 10.88.0.2. Root only;
# needs the ipxe package (snponly.efi) and, for `dhcp`, dnsmasq.
#
#   bench-netboot.sh storm [CLIENTS]  CLIENTS simulated machines booting at
#                                     once: DHCP → 4011 → TFTP → HTTP (default 500)
#   bench-netboot.sh dhcp             ProxyDHCP offers per second, pxeops and
#                                     dnsmasq in proxy mode taking turns at each
#                                     rate of $RATES (default 5000 10000 20000 40000)
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:?usage: bench-netboot.sh storm [CLIENTS] | dhcp}
work=$(mktemp -d)
srv=bn-srv cli=bn-cli
cleanup() { ip netns pids $srv 2>/dev/null | xargs -r kill 2>/dev/null; ip netns del $srv 2>/dev/null; ip netns del $cli 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/pxeops" ./cmd/pxeops
go build -o "$work/pxestorm" ./internal/loadtest/cmd/pxestorm
go run ./internal/gentree/cmd/gentree -groups 10000 -profiles 100 "$work/fleet"
ip netns add $srv; ip netns add $cli
ip -n $srv link set lo up; ip -n $cli link set lo up
ip link add eth-bn type veth peer name eth0 netns $srv
ip link set eth-bn netns $cli
ip -n $srv addr add 10.88.0.1/24 dev eth0; ip -n $srv link set eth0 up
ip -n $cli addr add 10.88.0.2/24 dev eth-bn; ip -n $cli link set eth-bn up

start_pxeops() {
  ip netns exec $srv "$work/pxeops" serve --source "$work/fleet" --proxy-dhcp --interface eth0 --http-addr :8080 --log-level warn 2>/dev/null &
  pid=$!
  for _ in $(seq 100); do ip netns exec $srv curl -sf http://127.0.0.1:8080/readyz >/dev/null && break; sleep 0.2; done
}
storm() { ip netns exec $cli "$work/pxestorm" -server 10.88.0.1 -local 10.88.0.2 "$@"; }
# UDP receive-buffer overflows in a namespace (the kernel's RcvbufErrors):
# where a drop happened, server or generator.
overflows() { ip netns exec "$1" awk '/^Udp:/ { if (h) print $6; h = 1 }' /proc/net/snmp; }
measure() { # label rate
  local s0 c0 out
  s0=$(overflows $srv); c0=$(overflows $cli)
  out=$(storm -rate "$2" -duration 5s)
  echo "$1 at $2/s: $out; socket overflows: server $(( $(overflows $srv) - s0 )), generator $(( $(overflows $cli) - c0 ))"
}

case $mode in
storm)
  start_pxeops
  storm -clients "${2:-500}"
  echo "server side:"
  ip netns exec $srv curl -s http://127.0.0.1:8080/metrics | grep -E '^pxeops_(dhcp_packets_total|tftp_transfers_total)' || true
  ;;
dhcp)
  for rate in ${RATES:-5000 10000 20000 40000}; do
    ip netns exec $srv dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 --interface=eth0 --bind-interfaces \
      --dhcp-range=10.88.0.0,proxy --pxe-service=x86-64_EFI,pxeops,snponly --quiet-dhcp --log-facility=/dev/null &
    pid=$!; sleep 1
    measure dnsmasq "$rate"
    kill $pid; wait $pid 2>/dev/null || true
    start_pxeops
    measure "pxeops " "$rate"
    kill $pid; wait $pid 2>/dev/null || true
  done
  ;;
*) echo "usage: bench-netboot.sh storm [CLIENTS] | dhcp" >&2; exit 2 ;;
esac
