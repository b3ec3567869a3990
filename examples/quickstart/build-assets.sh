#!/usr/bin/env bash
# Builds the quickstart's boot files offline from Debian packages, since no
# OS image can be downloaded on these machines:
#   assets/quickstart/vmlinuz          Debian's kernel (linux-image-*-amd64)
#   assets/quickstart/initrd.cpio.gz   busybox-static with an /init that prints
#                                      a marker, fetches and prints the config
#                                      when the command line has
#                                      pxeops.config=URL, and powers off
# With ARCH=arm64 the same for arm64 (QEMU's virt machine), from Debian's
# arm64 packages, into assets/arm64/quickstart/ (the amd64 files stay where
# they are): needs `dpkg --add-architecture arm64` and `apt-get update`.
# Usage: [ARCH=amd64|arm64] build-assets.sh [OUT-DIR]   (default: assets/ beside this script)
# Needs apt-get (run `apt-get update` once), dpkg-deb, cpio and gzip.
set -euo pipefail
for tool in apt-get apt-cache dpkg-deb cpio gzip; do
  command -v "$tool" >/dev/null || { echo "build-assets: $tool not found (apt-get install cpio gzip dpkg)" >&2; exit 1; }
done
here=$(cd "$(dirname "$0")" && pwd)
out=$(realpath -m "${1:-$here/assets}")
arch=${ARCH:-amd64}
case "$arch" in
  amd64) pkgarch="" dest="$out/quickstart" ;;
  arm64) pkgarch=":arm64" dest="$out/arm64/quickstart" ;;
  *) echo "build-assets: ARCH=$arch: want amd64 or arm64" >&2; exit 1 ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# apt-get download fetches a package without installing it (and without the
# slow initramfs build a kernel install runs).
kernel_pkg=$(apt-cache depends "linux-image-$arch$pkgarch" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$kernel_pkg" ]; then
  [ "$arch" = amd64 ] || echo "build-assets: (arm64 needs dpkg --add-architecture arm64 first)" >&2
  echo "build-assets: no linux-image-$arch in apt's lists; run apt-get update" >&2; exit 1
fi
apt-get download -q -o APT::Sandbox::User=root "$kernel_pkg" "busybox-static$pkgarch" >/dev/null
dpkg-deb -x linux-image-*.deb kernel
dpkg-deb -x busybox-static_*.deb busybox

mkdir -p root/bin root/proc root/sys root/dev root/lib/modules
cp busybox/bin/busybox root/bin/busybox
# The NIC's driver, so the initramfs can fetch its config when the kernel
# command line names one (pxeops.config=URL): e1000 (QEMU's default NIC on
# x86); on arm64 virtio-net, a module in Debian's kernel with the virtio
# PCI transport and failover modules under it. /lib/modules/order lists
# them in load order (the package has no modules.dep: depmod runs at
# install).
case "$arch" in
  amd64) modules="drivers/net/ethernet/intel/e1000/e1000.ko" ;;
  arm64) modules="drivers/virtio/virtio_pci_modern_dev.ko drivers/virtio/virtio_pci_legacy_dev.ko drivers/virtio/virtio_pci.ko net/core/failover.ko drivers/net/net_failover.ko drivers/net/virtio_net.ko" ;;
esac
for m in $modules; do
  cp kernel/lib/modules/*/kernel/"$m" root/lib/modules/
  basename "$m" >> root/lib/modules/order
done
cat > root/init <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
echo
echo "PXEOPS-QUICKSTART-BOOTED $(tr ' ' '\n' < /proc/cmdline | grep '^pxeops\.' | tr '\n' ' ')"
config=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^pxeops\.config=//p')
if [ -n "$config" ]; then
  for m in $(cat /lib/modules/order); do insmod "/lib/modules/$m"; done
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

# arm64's vmlinuz is a plain Image with an EFI stub (no EFI zboot, not
# gzip), which GRUB's linux command and the firmware load as it is.
mkdir -p "$dest"
cp kernel/boot/vmlinuz-* "$dest/vmlinuz"
cp initrd.cpio.gz "$dest/initrd.cpio.gz"
echo "built $dest/vmlinuz ($kernel_pkg) and $dest/initrd.cpio.gz"
