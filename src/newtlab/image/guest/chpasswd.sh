#!/bin/busybox-static sh
# chpasswd: set passwords from "user:password" lines on stdin, like the
# standard tool (echo root:secret | chpasswd). All or nothing: any bad line
# (no ":", empty password, no such user) is reported on stderr, nothing
# changes, exit 1. Success is silent, exit 0.
[ $# -eq 0 ] || { echo "usage: echo USER:PASSWORD | chpasswd" >&2; exit 1; }
umask 077
changes=/etc/.chpasswd.$$
trap 'rm -f "$changes" /etc/shadow.$$' EXIT
: > "$changes" || exit 1
n=0 bad=0
while IFS= read -r line || [ -n "$line" ]; do
  n=$((n + 1))
  user=${line%%:*} password=${line#*:}
  if [ "$user" = "$line" ]; then
    echo "chpasswd: line $n: missing new password" >&2; bad=1; continue
  elif [ -z "$password" ]; then
    echo "chpasswd: line $n: empty password for $user" >&2; bad=1; continue
  elif ! awk -F: -v u="$user" '$1 == u { found = 1 } END { exit !found }' /etc/passwd; then
    echo "chpasswd: line $n: user '$user' does not exist" >&2; bad=1; continue
  fi
  # On stdin, not as an argument: no "-" surprises, not visible in ps.
  hash=$(printf '%s\n' "$password" | mkpasswd -m sha512) || exit 1
  echo "$user:$hash" >> "$changes"
done
[ "$n" -gt 0 ] || { echo "chpasswd: no USER:PASSWORD line on stdin" >&2; exit 1; }
[ "$bad" -eq 0 ] || { echo "chpasswd: nothing changed" >&2; exit 1; }
today=$(($(date +%s) / 86400))
awk -F: -v OFS=: -v today="$today" '
  NR == FNR { hash[$1] = $2; next }
  $1 in hash { $2 = hash[$1]; $3 = today; delete hash[$1] }
  { print }
  END { for (u in hash) print u, hash[u], today, 0, 99999, 7, "", "", "" }
' "$changes" /etc/shadow > /etc/shadow.$$ && mv /etc/shadow.$$ /etc/shadow
