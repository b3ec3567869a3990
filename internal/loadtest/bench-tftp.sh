#!/usr/bin/env bash
# TFTP throughput of pxeops against tftpd-hpa, side by side in one run on
# loopback: Debian's ipxe.efi and a 32 MiB file, at blksize 512 and 1468,
# fetched with curl's TFTP client, alternating servers each round.
# Needs: apt-get install tftpd-hpa ipxe curl
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
sleep 1
fetch() { # server port, file, blksize, count → seconds for count downloads
  local start end
  start=$(date +%s.%N)
  for _ in $(seq "$4"); do curl -sS --tftp-blksize "$3" -o /dev/null "tftp://127.0.0.1:$1/$2"; done
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}
size() { stat -c %s "$work/root/$1"; }
for file in ipxe.efi:20 big.bin:2; do
  name=${file%%:*}; n=${file#*:}; bytes=$(( $(size "$name") * n ))
  for blk in 512 1468; do
    for round in 1 2 3; do
      tp=$(fetch 16901 "$name" "$blk" "$n"); th=$(fetch 16902 "$name" "$blk" "$n")
      printf '%-9s blksize %4s round %s: pxeops %6.1f MB/s  tftpd-hpa %6.1f MB/s  ratio %.2f\n' "$name" "$blk" "$round" \
        "$(echo "$bytes / $tp / 1000000" | bc -l)" "$(echo "$bytes / $th / 1000000" | bc -l)" "$(echo "$th / $tp" | bc -l)"
    done
  done
done
