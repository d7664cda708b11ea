#!/bin/busybox-static sh
# newtlab-frr: FRR in newtlab's router image, driven without FRR's own init
# scripts (frrinit.sh and watchfrr.sh need bash, which the image does not ship).
#   newtlab-frr [boot]              at boot (from /etc/newtlab/boot.d): forwarding
#                                   on, the daemons started, /etc/frr/frr.conf
#                                   applied, then watchfrr supervising them
#   newtlab-frr start|stop|restart DAEMON   watchfrr's commands for one daemon
# Readiness: /var/run/frr/newtlab-configured exists once the config is applied.
bin=/usr/lib/frr
run=/var/run/frr
conf=/etc/frr/frr.conf

# zebra, bgpd and staticd always (readiness asks zebra and bgpd); ospfd and
# bfdd when the configuration uses them, as Debian's /etc/frr/daemons would
# say: each daemon costs ~1.5 s of the boot under TCG.
daemons() {
  echo zebra bgpd staticd
  grep -q "^router ospf" "$conf" 2>/dev/null && echo ospfd
  grep -q "^ *bfd" "$conf" 2>/dev/null && echo bfdd
}

start() {
  extra=
  [ "$1" = zebra ] && extra="-s 90000000"  # netlink receive buffer for big tables
  # -d returns once the daemon is up and listening.
  $bin/$1 -d -F traditional -A 127.0.0.1 $extra
}

# FRR 8.4's zebra, using the kernel's nexthop groups, leaves a NIC whose carrier
# came back out of the ECMP group it was in (the kernel drops it from the group
# when the carrier goes): routes carry their own nexthops instead. The line
# leads frr.conf, so zebra has it before any route (daemons ignore files of
# their own once frr.conf exists).
nexthops="no zebra nexthop kernel enable"
own_nexthops() {
  grep -q "zebra nexthop kernel" "$conf" 2>/dev/null && return 0
  { echo "$nexthops"; cat "$conf" 2>/dev/null; } > "$conf.new" && mv "$conf.new" "$conf"
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
  own_nexthops
  chosen=$(daemons)
  for daemon in $chosen; do start "$daemon"; done
  /usr/bin/vtysh -b > /var/log/frr/boot.log 2>&1
  echo "vtysh -b exited $?" >> /var/log/frr/boot.log
  touch "$run/newtlab-configured"
  $bin/watchfrr -d -F traditional -r "/sbin/newtlab-frr restart %s" \
    -s "/sbin/newtlab-frr start %s" -k "/sbin/newtlab-frr stop %s" $chosen
  ;;
start) start "$2" && /usr/bin/vtysh -b -d "$2" ;;
stop) stop "$2" ;;
restart) stop "$2"; sleep 1; start "$2" && /usr/bin/vtysh -b -d "$2" ;;
*) echo "usage: newtlab-frr [boot] | start|stop|restart DAEMON" >&2; exit 2 ;;
esac
