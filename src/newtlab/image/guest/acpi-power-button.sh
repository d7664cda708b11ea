#!/bin/busybox-static sh
# busybox acpid runs this on the ACPI power button (QMP system_powerdown):
# init runs its shutdown actions, then the VM powers off (QEMU exits).
poweroff
