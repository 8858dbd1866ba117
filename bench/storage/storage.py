#!/usr/bin/env python3
"""Storage benchmark: block-device throughput/IOPS inside the unikernel (`blkbench`)
and `kv` PUT/GET operations per second, on QEMU microvm with one virtio-blk disk
backed by a raw file (cache=writeback, QEMU's default), the configuration
`cargo oasis run --disk` uses.

    python3 bench/storage/storage.py [--runs N] [--seconds S] [--conns C] [--write]

Prints a Markdown report (and writes it to bench/storage/RESULTS.md with --write).

Linux peer: the Debian guest from `bench/guest/build --json` booted with `role=blk`
in the same QEMU configuration (microvm — with ACPI, which is how that kernel finds
virtio-mmio devices —, 1 vCPU, 128 MiB, the same raw disk file, recreated before every
run like blkbench's). It runs blkbench's sequential tests with busybox `dd` on
/dev/vda: 1 MiB requests, one at a time, over the same 64 MiB, first with O_DIRECT
(`oflag=direct conv=fsync` / `iflag=direct`: no page cache, the like-for-like
figure) and then buffered (page cache dropped before each). Random 4 KiB tests have no
Linux figure: busybox has no tool that issues random-offset I/O from one process (a
`dd` per request would measure fork+exec, not the disk). When the guest cannot be
built the report says so and shows Oasis only.
"""
import argparse, json, os, re, socket, statistics, subprocess, sys, tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import oasisbench as ob  # noqa: E402

ROOT = ob.ROOT
TARGET_DIR = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def build(apps):
    subprocess.run(["cargo", "build", "-q", "--release", "--target", "x86_64-unknown-none"]
                   + sum((["-p", a] for a in apps), []), cwd=ROOT, check=True)
    return {a: os.path.join(TARGET_DIR, "x86_64-unknown-none", "release", a) for a in apps}


def disk_args(path):
    return ["-drive", f"file={path},format=raw,if=none,id=d0", "-device", "virtio-blk-device,drive=d0"]


def run_blkbench(kernel, disk, append=""):
    import resource
    cmd = ob.qemu_cmd("microvm", kernel, mem=128, append=append, extra=disk_args(disk))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    g = ob.Guest(cmd)
    try:
        if not g.wait_for(b"blkbench: done", timeout=600):
            raise RuntimeError("blkbench did not finish:\n" + g.console.decode(errors="replace"))
    finally:
        g.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    text = g.console.decode(errors="replace")
    results = {}
    for m in re.finditer(r"blkbench: (\S+ bs=\S+ qd=\d+): ([\d.]+) (MiB/s|IOPS)", text):
        results[m.group(1)] = (float(m.group(2)), m.group(3))
    extra = re.search(r"interrupt wakeups (\d+), lost-interrupt rescues (\d+)", text)
    return results, cpu, extra.groups() if extra else None


def linux_guest():
    """bench/guest/build --json as a dict, or (None, why)."""
    script = os.path.join(ROOT, "bench", "guest", "build")
    if not os.path.exists(script):
        return None, "bench/guest/build does not exist"
    r = subprocess.run([script, "--json"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    if r.returncode != 0:
        return None, "bench/guest/build failed: " + r.stdout.decode(errors="replace")[-300:]
    try:
        info = json.loads(r.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError) as e:
        return None, f"bench/guest/build --json printed no JSON: {e}"
    if "blk" not in info.get("roles", []):
        return None, "this bench/guest/build has no role=blk"
    return info, None


def run_linux_blk(info, disk, size_mib=64):
    """The Linux guest's role=blk on `disk`: {test: MiB/s}, QEMU CPU seconds."""
    import resource
    append = f"{info['append']} role=blk size_mib={size_mib}"
    cmd = ob.qemu_cmd("microvm", info["kernel"], mem=128, append=append, initrd=info["initrd"], extra=disk_args(disk))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    g = ob.Guest(cmd)
    try:
        if not g.wait_for(b"oasis-guest: blk done", timeout=300):
            raise RuntimeError("the Linux guest's role=blk did not finish:\n" + g.console.decode(errors="replace")[-3000:])
    finally:
        g.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    text = g.console.decode(errors="replace")
    results = {m.group(1): float(m.group(2))
               for m in re.finditer(r"oasis-guest: blk (\S+ bs=\S+ qd=\d+ \w+): ([\d.]+) MiB/s", text)}
    failed = re.findall(r"oasis-guest: blk (.*: failed: .*)", text)
    return results, cpu, failed


class KvConn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def req(self, method, path, body=b""):
        head = f"{method} {path} HTTP/1.1\r\nHost: kv\r\n"
        if method == "PUT":
            head += f"Content-Length: {len(body)}\r\n"
        self.s.sendall(head.encode() + b"\r\n" + body)
        while b"\r\n\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise OSError("closed")
            self.buf += chunk
        end = self.buf.index(b"\r\n\r\n") + 4
        head = self.buf[:end].decode()
        status = int(head[9:12])
        m = re.search(r"(?i)content-length: (\d+)", head)
        n = int(m.group(1)) if m and status not in (204, 304) else 0
        while len(self.buf) < end + n:
            self.buf += self.s.recv(65536)
        self.buf = self.buf[end + n:]
        return status


def kv_phase(port, conns, seconds, op, value, keys):
    counts = [0] * conns
    stop = time.perf_counter() + seconds

    def worker(i):
        c = KvConn(port)
        n = 0
        while time.perf_counter() < stop:
            k = f"c{i}-{n % keys}"
            if op == "PUT":
                st = c.req("PUT", f"/kv/{k}", value)
                assert st in (201, 204), st
            else:
                st = c.req("GET", f"/kv/{k}")
                assert st == 200, st
            n += 1
        counts[i] = n

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts), time.perf_counter() - t0


def run_kv(kernel, disk, conns, seconds, value_len):
    port = ob.free_port()
    cmd = ob.qemu_cmd("microvm", kernel, mem=128, net=("user", [(port, 80)]), extra=disk_args(disk))
    g = ob.Guest(cmd)
    out = {}
    try:
        if not g.wait_for(b"kv: ready", timeout=120):
            raise RuntimeError("kv did not start:\n" + g.console.decode(errors="replace"))
        value = os.urandom(value_len)
        for op in ("PUT", "GET"):
            cpu0 = g.cpu_seconds()
            n, dt = kv_phase(port, conns, seconds, op, value, keys=200)
            cpu = g.cpu_seconds() - cpu0
            out[op] = (n / dt, cpu / max(n, 1) * 1e6)
    finally:
        g.stop()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--value", type=int, default=100)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    k = build(["blkbench", "kv"])
    lines = ["# Storage benchmark", "",
             f"Machine: {ob.machine_description()}.", "",
             "QEMU microvm, 1 vCPU, 128 MiB, one virtio-blk-device on a raw file "
             "(`-drive format=raw`, cache=writeback default; a flush is an fdatasync on the host file).",
             f"Command: `python3 bench/storage/storage.py --runs {a.runs} --seconds {a.seconds} --conns {a.conns} --value {a.value}`", ""]
    info, why_not = linux_guest()
    if info is None:
        lines += [f"**Linux peer: not run** — {why_not}; Oasis numbers only (no ratios).", ""]
    with tempfile.TemporaryDirectory() as tmp:
        disk = os.path.join(tmp, "disk.img")

        def fresh_disk(size):
            with open(disk, "wb") as f:
                f.truncate(size)

        runs, lruns = [], []
        for _ in range(a.runs):
            # Alternate the two sides so slow phases of a shared machine hit both.
            fresh_disk(256 << 20)
            runs.append(run_blkbench(k["blkbench"], disk))
            if info is not None:
                fresh_disk(256 << 20)
                lruns.append(run_linux_blk(info, disk))
        med = lambda xs: statistics.median(xs) if xs else None
        f1 = lambda v: "n/a" if v is None else f"{v:.1f}"
        lines += ["## Block device (64 MiB span, median of runs)", "",
                  "Oasis: `appliances/blkbench` through `BlockDevice`. Linux: busybox `dd` on /dev/vda in the Debian guest "
                  "(`role=blk`), 1 MiB requests at queue depth 1; *direct* = O_DIRECT (`iflag=direct`, "
                  "`oflag=direct conv=fsync`), *buffered* = through the page cache (dropped before each test; "
                  "the write includes the final fsync). Ratio = Oasis / Linux direct (> 1: Oasis faster).", "",
                  "| test | Oasis | Linux dd direct | Linux dd buffered | unit | Oasis / Linux direct | Oasis runs | Linux direct runs |",
                  "|---|---:|---:|---:|---|---:|---|---|"]
        ratios = {}
        for name in runs[0][0]:
            vals = [r[0][name][0] for r in runs if name in r[0]]
            o = med(vals)
            d = [r[0][f"{name} direct"] for r in lruns if f"{name} direct" in r[0]]
            b = [r[0][f"{name} buffered"] for r in lruns if f"{name} buffered" in r[0]]
            ld, lb = med(d), med(b)
            ratio = f"{o / ld:.2f}" if o and ld else "n/a"
            if o and ld:
                ratios[name] = o / ld
            lines.append(f"| {name} | {o:.1f} | {f1(ld)} | {f1(lb)} | {runs[0][0][name][1]} | {ratio} | "
                         f"{', '.join(f'{v:.0f}' for v in vals)} | {', '.join(f'{v:.0f}' for v in d) or 'n/a'} |")
        cpu = [r[1] for r in runs]
        lines += ["", f"QEMU CPU time for the whole blkbench run: median {statistics.median(cpu):.2f} s. "
                  f"Interrupt wakeups / lost-interrupt rescues (last run): {runs[-1][2]}."]
        if lruns:
            lines.append(f"Linux guest QEMU CPU time per run (boot + 4 dd passes): median {med([r[1] for r in lruns]):.2f} s.")
            failed = sorted({f for r in lruns for f in r[2]})
            if failed:
                lines.append("Linux tests that failed: " + "; ".join(failed) + ".")
            lines.append("Random 4 KiB rows: no Linux figure (busybox has no random-offset I/O tool; a `dd` per request "
                         "would time fork+exec).")
        seq = [n for n in ratios if n.startswith("seq-read")]
        if seq:
            lines.append(f"\n**Oasis sequential read / Linux direct-I/O sequential read = {ratios[seq[0]] * 100:.0f} %** "
                         "(issue target: ≥ 90 %).")
        lines.append("")
        kvr = []
        for _ in range(a.runs):
            fresh_disk(64 << 20)
            kvr.append(run_kv(k["kv"], disk, a.conns, a.seconds, a.value))
        lines += [f"## kv over HTTP ({a.conns} keep-alive connections, {a.value}-byte values, 200 keys per connection, {a.seconds:.0f} s per phase)", "",
                  "| op | ops/s (median) | QEMU CPU µs/op | runs (ops/s) |", "|---|---:|---:|---|"]
        for op in ("PUT", "GET"):
            v = [r[op][0] for r in kvr]
            c = [r[op][1] for r in kvr]
            lines.append(f"| {op} | {statistics.median(v):.0f} | {statistics.median(c):.0f} | {', '.join(f'{x:.0f}' for x in v)} |")
        lines += ["", "PUTs are acknowledged after the record is flushed; concurrent PUTs share one flush (group commit). "
                  "No Linux peer for kv (it is Oasis' own key-value store; there is no equivalent in the guest)."]
    report = "\n".join(lines) + "\n"
    print(report)
    if a.write:
        open(os.path.join(HERE, "RESULTS.md"), "w").write(report)


if __name__ == "__main__":
    main()
