#!/bin/busybox-static sh
# newtlab-net-up: bring the management NIC (eth0, QEMU user-mode networking)
# up with DHCP and make sure the SSH server runs. Safe to run again.
# Success: prints "newtlab-net-up: eth0 <addr>/<len>, sshd on port 22", exit 0.
# Failure: prints "newtlab-net-up: <why>" on stderr, exit 1.
fail() { echo "newtlab-net-up: $*" >&2; exit 1; }
[ -e /sys/class/net/eth0 ] || fail "no eth0 (is QEMU NIC 0 present?)"
ip link set eth0 up || fail "cannot bring eth0 up"
# e1000 reports link ~2 s after "up": retry discover every second for 20 s.
udhcpc -i eth0 -t 20 -T 1 -A 1 -n -q >/dev/null 2>&1 ||
  fail "no DHCP lease on eth0 within 20 s"
newtlab-sshd || fail "the SSH server did not start"
addr=$(ip -4 -o addr show dev eth0 | awk '{print $4; exit}')
echo "newtlab-net-up: eth0 $addr, sshd on port 22"
