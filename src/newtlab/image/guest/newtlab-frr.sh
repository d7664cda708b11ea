#!/bin/busybox-static sh
# newtlab-frr: FRR in newtlab's router image, driven without FRR's own init
# scripts (frrinit.sh and watchfrr.sh need bash, which the image does not ship).
#   newtlab-frr [boot]              at boot (from /etc/newtlab/boot.d): forwarding
#                                   on, every daemon started, /etc/frr/frr.conf
#                                   applied, then watchfrr supervising them
#   newtlab-frr start|stop|restart DAEMON   watchfrr's commands for one daemon
# Readiness: /var/run/frr/newtlab-configured exists once the config is applied.
daemons="zebra bgpd ospfd staticd bfdd"
bin=/usr/lib/frr
run=/var/run/frr

start() {
  extra=
  [ "$1" = zebra ] && extra="-s 90000000"  # netlink receive buffer for big tables
  # -d returns once the daemon is up and listening.
  $bin/$1 -d -F traditional -A 127.0.0.1 $extra || return 1
  # FRR 8.4's zebra, using the kernel's nexthop groups, leaves a NIC whose
  # carrier came back out of the ECMP group it was in (the kernel drops it
  # from the group when the carrier goes): routes carry their nexthops instead.
  [ "$1" = zebra ] && /usr/bin/vtysh -d zebra -c "configure terminal" \
    -c "no zebra nexthop kernel enable" >/dev/null
  return 0
}

stop() {
  [ -r "$run/$1.pid" ] && kill "$(cat "$run/$1.pid")" 2>/dev/null
  return 0
}

case "${1:-boot}" in
boot)
  mkdir -p "$run" /var/log/frr /var/tmp/frr
  chown frr:frr "$run" /var/log/frr /var/tmp/frr
  chmod 775 "$run"
  sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
    net.ipv4.fib_multipath_hash_policy=1 >/dev/null
  for daemon in $daemons; do start "$daemon"; done
  /usr/bin/vtysh -b > /var/log/frr/boot.log 2>&1
  echo "vtysh -b exited $?" >> /var/log/frr/boot.log
  touch "$run/newtlab-configured"
  $bin/watchfrr -d -F traditional -r "/sbin/newtlab-frr restart %s" \
    -s "/sbin/newtlab-frr start %s" -k "/sbin/newtlab-frr stop %s" $daemons
  ;;
start) start "$2" && /usr/bin/vtysh -b -d "$2" ;;
stop) stop "$2" ;;
restart) stop "$2"; sleep 1; start "$2" && /usr/bin/vtysh -b -d "$2" ;;
*) echo "usage: newtlab-frr [boot] | start|stop|restart DAEMON" >&2; exit 2 ;;
esac
