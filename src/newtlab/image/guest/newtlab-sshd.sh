#!/bin/busybox-static sh
# newtlab-sshd: start the SSH server (dropbear) unless it already runs.
# Its ed25519 host key is made first: fast even under TCG once the kernel has
# randomness (virtio-rng-pci gives it at once). A client preferring another
# key type gets one made on demand (-R): ECDSA in ~0.1 s, RSA in ~5 s under
# TCG. Only on demand: made ahead at every boot, an RSA key cost each guest
# ~5 s of CPU that its neighbours, still booting, were waiting for.
# Host keys live in the initramfs: new ones every boot. Safe to run twice.
ed25519=/etc/dropbear/dropbear_ed25519_host_key
if [ ! -s "$ed25519" ]; then
  dropbearkey -t ed25519 -f "$ed25519.$$" >/dev/null 2>&1 && mv -f "$ed25519.$$" "$ed25519"
fi
[ -s "$ed25519" ] || exit 1
if ! pidof dropbear >/dev/null; then
  /usr/sbin/dropbear -R -r "$ed25519" -p 22 || { sleep 1; pidof dropbear >/dev/null || exit 1; }
fi
exit 0
