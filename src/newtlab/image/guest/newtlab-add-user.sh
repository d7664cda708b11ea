#!/bin/busybox-static sh
# newtlab-add-user <user> <password>: add an SSH/console login with its own
# home. It has uid 0, like root: busybox su cannot work (busybox is not
# setuid) and the user must be able to configure interfaces.
# Success: prints "newtlab-add-user: added <user>", exit 0 (an existing
# user just gets the new password). Bad arguments: message on stderr, exit 2.
user="$1" password="$2"
case "$user" in
  "" | *[!A-Za-z0-9_.-]* | -*) echo "newtlab-add-user: usage: newtlab-add-user USER PASSWORD" >&2; exit 2 ;;
esac
[ -n "$password" ] || { echo "newtlab-add-user: a password is required" >&2; exit 2; }
if ! grep -q "^$user:" /etc/passwd; then
  [ "$user" = root ] || home=/home/$user
  echo "$user:x:0:0:$user:${home:-/root}:/bin/sh" >> /etc/passwd
  mkdir -p -m 700 "${home:-/root}"
fi
printf '%s:%s\n' "$user" "$password" | chpasswd || exit 1
echo "newtlab-add-user: added $user"
