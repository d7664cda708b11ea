#!/usr/bin/env bash
# Install newtlab and everything it needs on Debian 12, then run the default example:
# deploy examples/line3 (three Linux routers in a line), show its status, ping from one
# end to the other, and destroy it again.
#   ./install.sh            install + demo
#   ./install.sh --keep     install + demo, and leave the lab running
#   ./install.sh --no-demo  install only
set -euo pipefail
cd "$(dirname "$0")"
mode="${1:-}"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

APT_PACKAGES=(
  python3 python3-venv python3-pip              # newtlab itself
  qemu-system-x86 qemu-utils                    # the VMs and their overlay disks
  openssh-client rsync                          # newtlab ssh; scp, sftp and rsync into VMs
  tcpdump                                       # reading captures: newtlab capture … | tcpdump -r -
  mtools syslinux syslinux-common dosfstools    # newtlab image build host: a bootable FAT disk
  busybox-static cpio                           #   and its root filesystem
  socat                                         # bench/newtlink.py compares against it
  openssh-server iproute2                       # tests: SSH "servers" in network namespaces
  chromium-headless-shell fonts-dejavu-core     # tests: the graph page drawn by a browser
  graphviz                                      # tests: `newtlab graph --format dot` renders
  libvirt-daemon-system libvirt-clients         # the libvirt engine (tests run a private libvirtd)
  libxml2-utils                                 #   xmllint, which virt-xml-validate runs
  libvirt-dev pkg-config gcc                    #   and its Python binding, built against it
)
echo "==> installing system packages"
as_root apt-get update -qq
# openssh-server and libvirt-daemon-system are for the tests' own sshd and libvirtd instances:
# a policy-rc.d that exits 101 ("forbidden") keeps their package scripts from starting system
# daemons. Ones already there stay.
policy=/usr/sbin/policy-rc.d made_policy=
if [ ! -e "$policy" ]; then
  made_policy=1
  trap 'as_root rm -f "$policy"' EXIT # also if the install fails
  as_root sh -c "printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy"
fi
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "${APT_PACKAGES[@]}" >/dev/null
if [ "$made_policy" ]; then as_root rm -f "$policy" && trap - EXIT; fi

echo "==> creating .venv and installing newtlab"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[dev,libvirt]'
newtlab=.venv/bin/newtlab

if [ "$mode" = "--no-demo" ]; then
  echo "==> installed: 'source .venv/bin/activate' puts newtlab on your PATH"
  exit 0
fi

echo "==> building the host image (cached after the first time)"
$newtlab image build host

echo "==> deploying examples/line3"
$newtlab deploy -S examples/line3 --force
cleanup() { [ "$mode" = "--keep" ] || $newtlab destroy line3; }
trap cleanup EXIT

echo "==> r1 pings r3 through r2 (each router addressed itself at boot: examples/line3/configs)"
$newtlab ssh r1 -- ping -c 3 -W 2 10.0.23.3
echo "==> the tests examples/line3/topology.json declares (newtlab validate)"
$newtlab validate line3
$newtlab status
if [ "$mode" = "--keep" ]; then
  echo "==> lab line3 left running: 'newtlab destroy line3' removes it"
fi
