#!/usr/bin/env bash
# Install newtlab and everything it needs on Debian 12, then run the default example.
#   ./install.sh            install, then run the default example (examples/line3)
#   ./install.sh --no-demo  install only
set -euo pipefail
cd "$(dirname "$0")"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

APT_PACKAGES=(
  python3 python3-venv python3-pip    # newtlab itself
  qemu-system-x86 qemu-utils          # the VMs and their overlay disks
  socat                               # benchmarks compare newtlink against it
)
echo "==> installing system packages: ${APT_PACKAGES[*]}"
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "${APT_PACKAGES[@]}" >/dev/null

echo "==> creating .venv and installing newtlab"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[dev]'

if [ "${1:-}" = "--no-demo" ]; then
  echo "==> installed: run 'source .venv/bin/activate' to put newtlab on your PATH"
  exit 0
fi

echo "==> default example: newtlab plan -S examples/line3"
.venv/bin/newtlab plan -S examples/line3
