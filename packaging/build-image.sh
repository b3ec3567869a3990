#!/usr/bin/env bash
# Builds the pxeops OCI image FROM scratch with podman, offline: the
# static binary, Debian's iPXE binaries (package ipxe), shim and GRUB
# when the host has them, CA certificates (package ca-certificates) and a
# non-root user, 65532 "pxeops". Nothing
# is pulled: no base image.
#
#   packaging/build-image.sh [IMAGE]     default localhost/pxeops:latest
#
# PODMAN (default podman) may carry global options, e.g.
# PODMAN="podman --root DIR --runroot DIR" to keep the build's storage apart.
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-localhost/pxeops:latest}
podman=${PODMAN:-podman}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
root=$ctx/rootfs
mkdir -p "$root/usr/bin" "$root/usr/lib/ipxe" "$root/etc/ssl/certs" "$root/var/lib/pxeops" "$root/config" "$root/tmp"
CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$root/usr/bin/pxeops" ./cmd/pxeops
# Debian's ipxe.efi is a symlink into /boot: copy what it points at.
for f in undionly.kpxe snponly.efi ipxe.efi ipxe.pxe; do
  [ -e "/usr/lib/ipxe/$f" ] && cp -L "/usr/lib/ipxe/$f" "$root/usr/lib/ipxe/$f"
done
[ -e "$root/usr/lib/ipxe/undionly.kpxe" ] || { echo "build-image.sh: /usr/lib/ipxe/undionly.kpxe missing: apt-get install ipxe" >&2; exit 1; }
# The GRUB route's defaults (--shim-binary, --grub-binary: packages
# shim-signed, grub-efi-amd64-signed), where the build host has both.
shim=/usr/lib/shim/shimx64.efi.signed grub=/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed
if [ -e "$shim" ] && [ -e "$grub" ]; then
  for f in "$shim" "$grub"; do mkdir -p "$root$(dirname "$f")" && cp -L "$f" "$root$f"; done
else
  echo "build-image.sh: no $shim and $grub (apt-get install shim-signed grub-efi-amd64-signed): the image has no GRUB route" >&2
fi
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
echo 'pxeops:x:65532:65532:pxeops:/var/lib/pxeops:/usr/bin/pxeops' > "$root/etc/passwd"
echo 'pxeops:x:65532:' > "$root/etc/group"
chmod 1777 "$root/tmp"
cp packaging/Containerfile "$ctx/"
# The state dir is the user's, and group 0's with mode 0770: where a
# runtime does not give a non-root user its added capability (Docker),
# pxeops runs as uid 0 with that capability alone, and without
# CAP_DAC_OVERRIDE uid 0 writes only what its group may.
tar -C "$root" --numeric-owner --owner=0 --group=0 -cf "$ctx/rootfs.tar" .
tar -C "$root" --numeric-owner --owner=65532 --group=0 --mode=0770 -rf "$ctx/rootfs.tar" ./var/lib/pxeops
$podman build --quiet -t "$image" -f "$ctx/Containerfile" "$ctx" >/dev/null
echo "$image"
