# {% raw %} (a boot patch's file is a Jinja2 template; this one is taken as it is)
"""Edits to the files of SONiC's frrcfgd in the bgp container, run there as root.

    python3 frrcfgd_edits.py EDIT PATH

Each edit inserts a marked block after an anchor: text of SONiC 202505's file
that must appear exactly once. A file already carrying the mark is left alone
(the edit is safe to repeat); a file without the anchor, or with it twice, is
not the one the edit was written for and is left unchanged, with exit status 1.
The file is replaced atomically, keeping its mode. Prints what it did.
"""

import glob
import os
import subprocess
import sys
import tempfile

# sonic-buildimage src/sonic-frr-mgmt-framework/templates/bgpd/bgpd.conf.db.j2 renders BGP_GLOBALS
# but has no line for ebgp_requires_policy, so FRR keeps its default (eBGP routes need a policy).
EBGP_ANCHOR = " no bgp default ipv4-unicast\n{% endif %}\n"
EBGP_BLOCK = """\
{# newtlab: ebgp_requires_policy #}
{% if 'ebgp_requires_policy' in bgp_sess and bgp_sess['ebgp_requires_policy'] == 'false' %}
 no bgp ebgp-requires-policy
{% endif %}
"""

# frrcfgd.py's BGPConfigDaemon.start(): the block runs before config_db.listen(). It programs
# each VRF's vni (CONFIG_DB VRF|<name> vni) into zebra at once and every 5 s after, which
# vrf_handler should do on its own but does not on Cisco VS. Its own CONFIG_DB connection keeps
# it clear of the daemon's, which the listening thread uses.
VNI_ANCHOR = "    def start(self):\n        self.subscribe_all()\n"
VNI_BLOCK = """\
        # newtlab: vrf-vni sync
        def newtlab_vrf_vni_sync():
            db = ConfigDBConnector()
            db.connect()
            done = {}
            while True:
                try:
                    for vrf, entry in db.get_table('VRF').items():
                        vni = entry.get('vni', '0')
                        if vni in ('', '0') or done.get(vrf) == vni:
                            continue
                        argv = ['vtysh', '-c', 'configure terminal', '-c', 'vrf ' + vrf,
                                '-c', 'vni ' + vni]
                        if subprocess.call(argv) == 0:
                            done[vrf] = vni
                            syslog.syslog(syslog.LOG_INFO,
                                          'newtlab: vrf %s has vni %s' % (vrf, vni))
                except Exception as exc:
                    syslog.syslog(syslog.LOG_WARNING, 'newtlab: syncing VRF vnis: %s' % exc)
                time.sleep(5)
        threading.Thread(target=newtlab_vrf_vni_sync, name='newtlab-vrf-vni', daemon=True).start()
"""

# name: (anchor, block, the mark it leaves, what to run once it changed the file)
EDITS = {
    "ebgp-requires-policy": (EBGP_ANCHOR, EBGP_BLOCK, "{# newtlab: ebgp_requires_policy #}", []),
    "vrf-vni": (VNI_ANCHOR, VNI_BLOCK, "# newtlab: vrf-vni sync",
                ["supervisorctl", "restart", "frrcfgd"]),
}  # fmt: skip


def edit(name: str, path: str) -> int:
    anchor, block, mark, then = EDITS[name]
    with open(path) as f:
        text = f.read()
    if mark in text:
        print(f"{path}: {name} already there")
        return 0
    found = text.count(anchor)
    if found != 1:
        problem = f"the text {name} goes after appears {found} times, not once"
        print(f"{path}: {problem}: this is not the file of SONiC 202505 it was written for; "
              "left unchanged", file=sys.stderr)  # fmt: skip
        return 1
    directory = os.path.dirname(path)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".newtlab-")
    with os.fdopen(fd, "w") as f:
        f.write(text.replace(anchor, anchor + block))
    os.chmod(temporary, os.stat(path).st_mode & 0o7777)
    os.replace(temporary, path)
    if path.endswith(".py"):  # a compiled copy could outlive the source's new mtime
        stem = os.path.basename(path)[:-3]
        for compiled in glob.glob(os.path.join(directory, "__pycache__", stem + ".*.pyc")):
            os.remove(compiled)
    print(f"{path}: {name} added")
    if then:
        subprocess.run(then, check=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in EDITS:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(EDITS)} PATH")
    sys.exit(edit(sys.argv[1], sys.argv[2]))
# {% endraw %}
