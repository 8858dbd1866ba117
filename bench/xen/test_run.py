#!/usr/bin/env python3
"""Host-only tests of bench/xen/run's parsing and packing (no QEMU): `python3 bench/xen/test_run.py`."""
import gzip, importlib.machinery, importlib.util, os, stat, unittest

HERE = os.path.dirname(os.path.abspath(__file__))
_loader = importlib.machinery.SourceFileLoader("bench_xen_run", os.path.join(HERE, "run"))
_spec = importlib.util.spec_from_loader("bench_xen_run", _loader)
run = importlib.util.module_from_spec(_spec)
_loader.exec_module(run)

CONSOLE = """(XEN) Xen version 4.17.7
oasis-dom0: init (uptime 10.61)
oasis-dom0: begin xl-info
xen_version            : 4.17.7
oasis-dom0: end xl-info rc=0
oasis-dom0: begin xl-list
Name                                        ID   Mem VCPUs\tState\tTime(s)
Domain-0                                     0   512     1     r-----      16.7
oasis-dom0: end xl-list rc=0
oasis-dom0: xl ready (uptime 15.22)
oasis-dom0: begin xl-create
Parsing config from /etc/oasis/domu.cfg
oasis-dom0: end xl-create rc=0
oasis-dom0: domu created (uptime 17.0)
oasis-dom0: domid 3
oasis-dom0: begin backends
/local/domain/0/backend/vbd/3/51712/physical-device = "7:0"
/local/domain/0/backend/vif/3/0/state = "2"
oasis-dom0: end backends rc=0
oasis-dom0: begin ip-link
3: vif3.0: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc fq_codel master xenbr0 qlen 1000
oasis-dom0: end ip-link rc=0
oasis-dom0: begin xl-list-after
Name                                        ID   Mem VCPUs\tState\tTime(s)
Domain-0                                     0   512     1     r-----      28.7
oasis                                        3    32     1     ------      29.0
oasis-dom0: end xl-list-after rc=0
oasis-dom0: begin xenctx
rip: 0000000000113226
oasis-dom0: end xenctx rc=0
oasis-dom0: done rc=0 (uptime 40.0)
"""
SYMBOLS = [(0x100000, "__image_start"), (0x113217, "pit_sample"), (0x113300, "after")]


def run_quote(name):
    import urllib.parse
    return urllib.parse.quote(name)


class Summary(unittest.TestCase):
    def test_sections_keep_output_and_status(self):
        secs = run.sections(CONSOLE.replace("end xl-list rc=0", "end xl-list rc=7"))
        self.assertEqual(secs["xl-list"]["rc"], 7)
        self.assertIn("Domain-0", secs["xl-list"]["output"])
        self.assertEqual(secs["xl-info"]["output"], "xen_version            : 4.17.7\n")

    def test_a_good_run_passes_every_check(self):
        s = run.summarize(CONSOLE, {}, "hello", True, 16, SYMBOLS)
        self.assertTrue(s["ok"], s["checks"])
        self.assertEqual(s["domu"]["domid"], "3")
        self.assertEqual(s["domu"]["state_after_wait"], "------")
        self.assertEqual(s["domu"]["cpu_s_after_wait"], 29.0)
        self.assertEqual(s["domu"]["rip_symbol"], "pit_sample+0xf")

    def test_a_missing_vif_fails_the_vif_checks_only(self):
        text = CONSOLE.replace("vif3.0", "eth9").replace("backend/vif/3/0/state", "backend/vif/4/0/state")
        s = run.summarize(text, {}, "hello", True, 16, SYMBOLS)
        self.assertFalse(s["ok"])
        self.assertFalse(s["checks"]["vif_backend"])
        self.assertFalse(s["checks"]["vif_interface"])
        self.assertTrue(s["checks"]["vbd_backend"])

    def test_a_failed_create_or_a_cut_run_is_not_ok(self):
        s = run.summarize(CONSOLE.replace("end xl-create rc=0", "end xl-create rc=3"), {}, "hello", False, 0, [])
        self.assertFalse(s["checks"]["xl_create"])
        self.assertFalse(s["ok"])
        cut = CONSOLE[:CONSOLE.index("oasis-dom0: done")]
        s = run.summarize(cut, {}, None, False, 0, [])
        self.assertIsNone(s["dom0_rc"])
        self.assertFalse(s["ok"])

    def test_serve_checks_and_timings_are_read_from_their_lines(self):
        text = CONSOLE + "\n".join([
            "oasis-dom0: ready www 10.5 13.7",
            "oasis-dom0: fetch /index.html ok",
            "oasis-dom0: fetch /with%20space.txt bad: wget: bad address 0 bytes",
            "oasis-dom0: check www_ready ok ",
            "oasis-dom0: check www_files fail 1 of 2",
            "oasis-dom0: ready kv 20 23.25",
            "oasis-dom0: ready kv 25 29.5",
            "oasis-dom0: check kv_persisted ok ",
        ]) + "\n"
        s = run.summarize(text, {}, None, False, 0, [])
        self.assertFalse(s["ok"], "a failed check fails the run")
        self.assertTrue(s["checks"]["www_ready"])
        self.assertFalse(s["checks"]["www_files"])
        self.assertEqual(s["check_details"]["www_files"], "1 of 2")
        self.assertEqual(s["serve"]["www_ready_s"], [3.2])
        self.assertEqual(s["serve"]["kv_ready_s"], [3.25, 4.5])
        self.assertEqual(s["serve"]["fetched"], ["/index.html"])
        self.assertEqual([f for f, _ in s["serve"]["fetch_failed"]], ["/with%20space.txt"])
        ok = run.summarize(text.replace("www_files fail 1 of 2", "www_files ok 2"), {}, None, False, 0, [])
        self.assertTrue(ok["ok"], ok["checks"])

    def test_the_site_manifest_lists_every_file_with_an_encoded_path(self):
        import hashlib, tempfile
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "docs"))
            files = {"index.html": b"<p>hi</p>", "with space.txt": b"", "docs/a&b.md": b"x"}
            for name, data in files.items():
                with open(os.path.join(d, name), "wb") as f:
                    f.write(data)
            lines = run.site_manifest(d).splitlines()
        want = {f"{hashlib.md5(data).hexdigest()} /{run_quote(name)}" for name, data in files.items()}
        self.assertEqual(set(lines), want)
        self.assertIn("/with%20space.txt", "\n".join(lines))

    def test_cpio_has_parents_then_files_and_a_trailer(self):
        data = gzip.decompress(run.cpio_newc_gz({"/etc/oasis/run.sh": (b"#!/bin/sh\n", 0o755)}))
        names, modes, bodies, off = [], [], {}, 0
        while True:
            self.assertEqual(data[off:off + 6], b"070701")
            mode, size, nlen = int(data[off + 14:off + 22], 16), int(data[off + 54:off + 62], 16), int(data[off + 94:off + 102], 16)
            name = data[off + 110:off + 110 + nlen - 1].decode()
            off = off + 110 + nlen
            off += (4 - off % 4) % 4
            body = data[off:off + size]
            off += size + (4 - size % 4) % 4
            names.append(name)
            modes.append(mode)
            bodies[name] = body
            if name == "TRAILER!!!":
                break
        self.assertEqual(names, ["etc", "etc/oasis", "etc/oasis/run.sh", "TRAILER!!!"])
        self.assertTrue(stat.S_ISDIR(modes[1]))
        self.assertEqual(stat.S_IMODE(modes[2]), 0o755)
        self.assertEqual(bodies["etc/oasis/run.sh"], b"#!/bin/sh\n")


if __name__ == "__main__":
    unittest.main()
