#!/bin/busybox-static sh
# newtlab host image, boot: the root filesystem is this initramfs (every boot
# starts clean); the disk only carries SYSLINUX, the kernel and the initramfs.
# newtlab's own guest scripts run in busybox-static's shell: under TCG it
# starts commands several times faster than the dynamically linked busybox
# (the guest's /bin/sh). In there busybox's applets (ip too) always win.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
# No kmod and no modules.dep: the list is in dependency order (made at build).
while read -r module; do insmod "/lib/modules/$module" 2>/dev/null; done < /etc/newtlab/modules
# ethN is QEMU NIC N, whatever the mix of drivers.
newtlab-name-nics
hostname -F /etc/hostname
ip link set lo up
# Data NICs come up without addresses, ready for `ip addr add`; eth0 waits for
# newtlab-net-up.
for dev in /sys/class/net/eth*; do
  name=${dev##*/}
  [ "$name" = eth0 ] || ip link set "$name" up
done
# A NoCloud seed, if the VM has one: hostname, SSH keys, a user-data script.
newtlab-nocloud
# The ACPI power button (QMP system_powerdown) shuts the VM down cleanly.
acpid -c /etc/acpi
# What an image adds (the router image: FRR), in the background.
for hook in /etc/newtlab/boot.d/*; do
  [ -x "$hook" ] && "$hook" </dev/null >/dev/null 2>&1 &
done
# SSH in the background, so the login prompt does not wait for the host key.
newtlab-sshd &
