"""swsscommon's ConfigDBConnector, imitated over redis-cli: connect() and get_table() as SONiC's
(a key of several parts is a tuple; an entry's "NULL" field is not shown); subscribe() only
records the handler and listen() hears nothing, so no change ever reaches a handler."""

import subprocess
import threading


class ConfigDBConnector:
    def __init__(self):
        self.handlers = {}
        self.sub_thread = threading.Thread(target=lambda: None)

    def connect(self, wait_for_init=True, retry_on=False):
        pass

    def _redis(self, *args):
        argv = ["redis-cli", "-n", "4", "--raw", *args]
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.splitlines()

    def get_table(self, table):
        entries = {}
        for key in self._redis("KEYS", table + "|*"):
            flat = self._redis("HGETALL", key)
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            fields.pop("NULL", None)
            parts = key[len(table) + 1 :].split("|")
            entries[tuple(parts) if len(parts) > 1 else parts[0]] = fields
        return entries

    def subscribe(self, table, handler):
        self.handlers[table] = handler

    def listen(self):
        pass

    def stop_listen(self):
        pass
