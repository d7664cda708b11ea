#!/bin/busybox-static sh
# udhcpc's default script (Debian's busybox looks for /etc/udhcpc/default.script),
# so plain `udhcpc -i eth0 -n -q` works too. Called with the lease in the
# environment.
case "$1" in
  deconfig)
    # Up first: udhcpc does not bring a NIC up (on a down one it loops on
    # "Network is down").
    ip link set "$interface" up
    ip addr flush dev "$interface"
    ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    for gw in $router; do ip route add default via "$gw" dev "$interface"; break; done
    : > /etc/resolv.conf
    for ns in $dns; do echo "nameserver $ns" >> /etc/resolv.conf; done
    ;;
esac
exit 0
