export PATH=/usr/sbin:/usr/bin:/sbin:/bin
# The shell prompt is "<hostname># " (busybox ash may follow it with ESC[6n).
export PS1='\h# '
