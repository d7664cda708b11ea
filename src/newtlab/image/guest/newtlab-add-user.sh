#!/bin/sh
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
hash=$(mkpasswd -m sha512 "$password") || exit 1
grep -v "^$user:" /etc/shadow > /etc/shadow.new
echo "$user:$hash:19000:0:99999:7:::" >> /etc/shadow.new
chmod 600 /etc/shadow.new && mv /etc/shadow.new /etc/shadow
if ! grep -q "^$user:" /etc/passwd; then
  [ "$user" = root ] || home=/home/$user
  echo "$user:x:0:0:$user:${home:-/root}:/bin/sh" >> /etc/passwd
  mkdir -p -m 700 "${home:-/root}"
fi
echo "newtlab-add-user: added $user"
