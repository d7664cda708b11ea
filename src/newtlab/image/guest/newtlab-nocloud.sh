#!/bin/busybox-static sh
# newtlab-nocloud: the part of a cloud-init NoCloud seed (a CD labelled cidata
# holding meta-data and user-data) this image honours, on every boot:
#   meta-data  local-hostname: NAME            the hostname
#              public-keys: then "  - KEY" lines  root's SSH keys
#   user-data  a script starting with #!        run as root; output in
#                                               /var/log/nocloud.log
#              anything else but #cloud-config  installed as the file
#                                               /etc/newtlab/user-data-config names
#                                               (the router image: /etc/frr/frr.conf)
# #cloud-config modules are ignored.
seed=/run/nocloud
mkdir -p "$seed"
found=
for dev in /dev/sr[0-9]*; do
  [ -b "$dev" ] || continue
  if mount -t iso9660 -o ro "$dev" "$seed" 2>/dev/null; then
    [ -f "$seed/meta-data" ] && { found=$dev; break; }
    umount "$seed"
  fi
done
[ -n "$found" ] || exit 0

name=$(sed -n 's/^local-hostname:[ \t]*//p' "$seed/meta-data" | head -n 1 | tr -d "\"'\r")
if [ -n "$name" ]; then
  hostname "$name"
  echo "$name" > /etc/hostname
fi

keys=$(awk '/^public-keys:/ { on = 1; next }
            on && /^[ \t]*- / { sub(/^[ \t]*- /, ""); gsub(/["\r]/, ""); print; next }
            on && /^[^ \t]/ { on = 0 }' "$seed/meta-data")
if [ -n "$keys" ]; then
  mkdir -p -m 700 /root/.ssh
  echo "$keys" >> /root/.ssh/authorized_keys
  chmod 600 /root/.ssh/authorized_keys
fi

config=$(cat /etc/newtlab/user-data-config 2>/dev/null)
if [ -n "$config" ] && [ -s "$seed/user-data" ] && [ "$(head -c 2 "$seed/user-data")" != "#!" ] &&
   [ "$(head -n 1 "$seed/user-data" | tr -d '\r')" != "#cloud-config" ]; then
  cp "$seed/user-data" "$config"
  chmod 640 "$config"
elif [ "$(head -c 2 "$seed/user-data" 2>/dev/null)" = "#!" ]; then
  cp "$seed/user-data" /run/nocloud-user-data
  chmod 700 /run/nocloud-user-data
  /run/nocloud-user-data > /var/log/nocloud.log 2>&1
  echo "user-data exited $?" >> /var/log/nocloud.log
fi
