#!/usr/bin/env bash
# TFTP throughput of pxeops against tftpd-hpa, side by side in one run on
# loopback: Debian's ipxe.efi and a 32 MiB file, at blksize 512 and 1468,
# fetched with curl's TFTP client.
# Needs: apt-get install tftpd-hpa ipxe curl
# PXEOPS_BASELINE=/path/to/an/older/pxeops adds it as a third server, in
# the same alternation, to show what a change did.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/pxeops" ./cmd/pxeops
mkdir -p "$work/root" "$work/tree/profiles" "$work/tree/groups"
cp /usr/lib/ipxe/ipxe.efi "$work/root/ipxe.efi"
head -c 32M /dev/urandom > "$work/root/big.bin"
chmod -R a+rX "$work/root"
printf 'kernel: /assets/k\n' > "$work/tree/profiles/p.yaml"
printf 'profile: p\n' > "$work/tree/groups/default.yaml"
"$work/pxeops" serve --source "$work/tree" --http-addr 127.0.0.1:18180 --tftp-addr 127.0.0.1:16901 --ipxe-dir "$work/root" --log-level warn 2>/dev/null &
pids+=($!)
/usr/sbin/in.tftpd --foreground --address 127.0.0.1:16902 --secure "$work/root" &
pids+=($!)
baseline=${PXEOPS_BASELINE:-}
if [ -n "$baseline" ]; then
  "$baseline" serve --source "$work/tree" --http-addr 127.0.0.1:18181 --tftp-addr 127.0.0.1:16903 --ipxe-dir "$work/root" --log-level warn 2>/dev/null &
  pids+=($!)
fi
sleep 1
# One curl per fetch, the two servers alternating fetch by fetch so that
# the host's drift hits both alike; curl's own time_total (no process
# start) per transfer, median and quartiles per server, and the ratio of
# the medians (tftpd-hpa time / pxeops time: above 1 means pxeops is faster).
fetch() { # port file blksize → seconds
  curl -sS --tftp-blksize "$3" -o /dev/null -w '%{time_total}\n' "tftp://127.0.0.1:$1/$2"
}
quartiles() { sort -g | awk '{v[NR]=$1} END {printf "%.2f %.2f %.2f\n", v[int(NR/4)+1]*1000, v[int(NR/2)+1]*1000, v[int(3*NR/4)+1]*1000}'; }
for file in ipxe.efi:${IPXE_FETCHES:-60} big.bin:${BIG_FETCHES:-6}; do
  name=${file%%:*}; n=${file#*:}; size=$(stat -c %s "$work/root/$name")
  for blk in 512 1468; do
    : > "$work/p.txt"; : > "$work/h.txt"; : > "$work/b.txt"
    for _ in $(seq "$n"); do
      fetch 16901 "$name" "$blk" >> "$work/p.txt"
      fetch 16902 "$name" "$blk" >> "$work/h.txt"
      if [ -n "$baseline" ]; then fetch 16903 "$name" "$blk" >> "$work/b.txt"; fi
    done
    read -r p1 pm p3 < <(quartiles < "$work/p.txt")
    read -r h1 hm h3 < <(quartiles < "$work/h.txt")
    printf '%-9s blksize %4s, %s each: pxeops median %7.2f ms (%.2f–%.2f) %6.1f MB/s | tftpd-hpa median %7.2f ms (%.2f–%.2f) %6.1f MB/s | ratio %.2f\n' \
      "$name" "$blk" "$n" "$pm" "$p1" "$p3" "$(echo "$size / $pm / 1000" | bc -l)" "$hm" "$h1" "$h3" "$(echo "$size / $hm / 1000" | bc -l)" "$(echo "$hm / $pm" | bc -l)"
    if [ -n "$baseline" ]; then
      read -r b1 bm b3 < <(quartiles < "$work/b.txt")
      printf '%-9s blksize %4s, baseline median %7.2f ms (%.2f–%.2f), ratio to tftpd-hpa %.2f\n' "$name" "$blk" "$bm" "$b1" "$b3" "$(echo "$hm / $bm" | bc -l)"
    fi
  done
done
