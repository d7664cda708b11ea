#!/usr/bin/env python
"""frrcfgd, imitated for newtlab's boot patch tests (see the README two directories up).

SONiC's daemon (sonic-buildimage src/sonic-frr-mgmt-framework/frrcfgd/frrcfgd.py) turns CONFIG_DB
tables into FRR configuration through vtysh. This keeps its shape where the boot patches reach:
the module's imports, BGPConfigDaemon with its table handlers, subscribe_all(), start() and
stop() as SONiC 202505 writes them, and main(). Its vrf_handler programs no vni, as on Cisco VS.
"""

import signal
import subprocess  # noqa: F401 — SONiC's module imports these, and patches may use them
import syslog
import threading  # noqa: F401
import time  # noqa: F401

from swsscommon.swsscommon import ConfigDBConnector


class BGPConfigDaemon:
    def __init__(self):
        self.config_db = ConfigDBConnector()
        self.config_db.connect()
        self.table_handler_list = [
            ("BGP_GLOBALS", self.bgp_global_handler),
            ("VRF", self.vrf_handler),
        ]

    def bgp_global_handler(self, table, key, data):
        pass

    def vrf_handler(self, table, key, data):
        pass  # on Cisco VS a VRF's vni never reaches zebra from here

    def subscribe_all(self):
        for table, hdlr in self.table_handler_list:
            self.config_db.subscribe(table, hdlr)

    def start(self):
        self.subscribe_all()
        self.config_db.listen()

    def stop(self):
        self.config_db.stop_listen()


main_loop = True


def sig_handler(signum, frame):
    global main_loop
    main_loop = False


def main():
    for sig_num in [signal.SIGTERM, signal.SIGINT]:
        signal.signal(sig_num, sig_handler)
    syslog.syslog(syslog.LOG_DEBUG, "entering BGP configuration daemon")
    daemon = BGPConfigDaemon()
    daemon.start()
    while main_loop:
        signal.pause()
    daemon.stop()


if __name__ == "__main__":
    main()
