#!/bin/sh
# Remove the factory CONFIG_DB entries that conflict with newtron's configuration, once per
# switch: the mark in /etc/sonic (kept across reboots, with config_db.json) says it was done,
# so entries newtron writes later survive every later boot.
set -ef  # -f: a key is never a file pattern
mark=/etc/sonic/newtlab-factory-config-removed
if [ -e "$mark" ]; then
  echo "factory entries were removed on an earlier boot ($mark): nothing to do"
  exit 0
fi
removed=0
for pattern in 'BGP_NEIGHBOR|*' 'INTERFACE|*' 'LOOPBACK_INTERFACE|*|*'; do
  for key in $(redis-cli -n 4 --raw KEYS "$pattern"); do
    redis-cli -n 4 DEL "$key" >/dev/null
    removed=$((removed + 1))
  done
done
sudo config save -y
sudo touch "$mark"
echo "removed $removed factory entries; config saved"
