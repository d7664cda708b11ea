#!/bin/busybox-static sh
# newtlab-name-nics (run once at boot): name the NICs eth0..N in PCI order,
# so that ethN is always QEMU NIC N whatever the mix of drivers (the kernel
# numbers them in driver load order instead). A virtio NIC's device is a
# virtio bus device under its PCI function: sort by the PCI function's path.
i=0
for entry in $(for dev in /sys/class/net/*; do
    [ -e "$dev/device" ] || continue
    path=$(readlink -f "$dev/device")
    case "${path##*/}" in virtio*) path=${path%/*} ;; esac
    echo "$path=${dev##*/}"
  done | sort); do
  ip link set "${entry##*=}" name "newtlab-tmp$i"
  i=$((i + 1))
done
n=0
while [ "$n" -lt "$i" ]; do
  ip link set "newtlab-tmp$n" name "eth$n"
  n=$((n + 1))
done
