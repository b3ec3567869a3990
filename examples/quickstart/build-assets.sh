#!/usr/bin/env bash
# Builds the quickstart's boot files offline from Debian packages, since no
# OS image can be downloaded on these machines:
#   assets/quickstart/vmlinuz          Debian's kernel (linux-image-*-amd64)
#   assets/quickstart/initrd.cpio.gz   busybox-static with an /init that prints
#                                      a marker, fetches and prints the config
#                                      when the command line has
#                                      pxeops.config=URL, and powers off
# Usage: build-assets.sh [OUT-DIR]   (default: assets/ beside this script)
# Needs apt-get (run `apt-get update` once), dpkg-deb, cpio and gzip.
set -euo pipefail
for tool in apt-get apt-cache dpkg-deb cpio gzip; do
  command -v "$tool" >/dev/null || { echo "build-assets: $tool not found (apt-get install cpio gzip dpkg)" >&2; exit 1; }
done
here=$(cd "$(dirname "$0")" && pwd)
out=$(realpath -m "${1:-$here/assets}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# apt-get download fetches a package without installing it (and without the
# slow initramfs build a kernel install runs).
kernel_pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$kernel_pkg" ] || { echo "build-assets: no linux-image-amd64 in apt's lists; run apt-get update" >&2; exit 1; }
apt-get download -q -o APT::Sandbox::User=root "$kernel_pkg" busybox-static >/dev/null
dpkg-deb -x linux-image-*.deb kernel
dpkg-deb -x busybox-static_*.deb busybox

mkdir -p root/bin root/proc root/sys root/dev root/lib/modules
cp busybox/bin/busybox root/bin/busybox
# The e1000 driver (QEMU's default NIC), so the initramfs can fetch its
# config when the kernel command line names one (pxeops.config=URL).
cp kernel/lib/modules/*/kernel/drivers/net/ethernet/intel/e1000/e1000.ko root/lib/modules/
cat > root/init <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
echo
echo "PXEOPS-QUICKSTART-BOOTED $(tr ' ' '\n' < /proc/cmdline | grep '^pxeops\.' | tr '\n' ' ')"
config=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^pxeops\.config=//p')
if [ -n "$config" ]; then
  insmod /lib/modules/e1000.ko
  ip link set eth0 up
  udhcpc -i eth0 -n -q -t 10 -T 2 -s /bin/udhcpc.script
  if wget -q -O /config "$config"; then
    sed 's/^/PXEOPS-CONFIG: /' /config
  else
    echo "PXEOPS-CONFIG-FAILED $config"
  fi
fi
poweroff -f
INIT
cat > root/bin/udhcpc.script <<'SCRIPT'
#!/bin/sh
case "$1" in bound|renew) ip addr add "$ip/${mask:-24}" dev "$interface" && echo "PXEOPS-ADDRESS $ip" ;; esac
SCRIPT
chmod +x root/init root/bin/udhcpc.script
(cd root && find . | cpio -o -H newc --quiet | gzip -9) > initrd.cpio.gz

mkdir -p "$out/quickstart"
cp kernel/boot/vmlinuz-* "$out/quickstart/vmlinuz"
cp initrd.cpio.gz "$out/quickstart/initrd.cpio.gz"
echo "built $out/quickstart/vmlinuz ($kernel_pkg) and $out/quickstart/initrd.cpio.gz"
