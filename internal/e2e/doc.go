// Package e2e boots real firmware against pxeops: network namespaces
// joined by a bridge, dnsmasq handing out addresses only, `pxeops serve
// --proxy-dhcp` in its own namespace, and QEMU (SeaBIOS with iPXE, OVMF)
// under software emulation. README.md here says how the lab is built and
// why. The tests need root, qemu, dnsmasq, OVMF and QEMU's iPXE ROMs;
// .ci/run installs them, and without them every test skips.
package e2e
