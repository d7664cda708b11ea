#!/bin/busybox-static sh
# The serial console's login program (inittab: getty -n -l): root is logged in
# at once, no login or password prompt; the shell prompt "<hostname># " is the
# first thing the console shows. SSH still asks for a password or a key.
exec /bin/busybox-static login -f root
