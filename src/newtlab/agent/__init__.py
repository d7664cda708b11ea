"""The host agent: everything newtlab does on one machine, standard library only.

Overlays, QEMU start and stop (identity-checked, over raw QMP), the lab's
tagged processes, the supervised newtlink bridge, port probes, lab files and
the KVM probe, by name in ``ops``. This machine's transport calls them
in-process; for a server, this directory (and newtlink beside it) is
shipped over SSH and run by the server's own ``python3 -m <package> OP``
with JSON in and out (``__main__``), so every machine runs the same code and
nothing is installed on a server. The ground floor: it imports nothing else
of newtlab (newtlink excepted).
"""

from __future__ import annotations


class AgentError(Exception):
    """An operation failed; the message says what and what to do, for a user."""
