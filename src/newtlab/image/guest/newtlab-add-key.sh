#!/bin/busybox-static sh
# newtlab-add-key '<ssh public key line>' [user]: authorize a key for SSH
# logins as user (default: the current user, root). Idempotent.
# Success: prints "newtlab-add-key: key added for <user>" (or "... already
# present ..."), exit 0. Not a key, or no such user: message on stderr, exit 2.
key="$1"
user="${2:-$(id -un)}"
case "$key" in
  ssh-* | ecdsa-sha2-* | sk-*) ;;
  *) echo "newtlab-add-key: usage: newtlab-add-key 'ssh-ed25519 AAAA... comment' [user]" >&2; exit 2 ;;
esac
home=$(awk -F: -v u="$user" '$1 == u { print $6 }' /etc/passwd)
[ -n "$home" ] || { echo "newtlab-add-key: no user $user" >&2; exit 2; }
umask 077
mkdir -p "$home/.ssh" && chmod 700 "$home/.ssh" || exit 1
if grep -qxF "$key" "$home/.ssh/authorized_keys" 2>/dev/null; then
  echo "newtlab-add-key: key already present for $user"
  exit 0
fi
echo "$key" >> "$home/.ssh/authorized_keys" && chmod 600 "$home/.ssh/authorized_keys" || exit 1
echo "newtlab-add-key: key added for $user"
