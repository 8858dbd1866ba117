#!/usr/bin/env python3
"""Storage benchmark: block-device throughput/IOPS inside the unikernel (`blkbench`)
and `kv` PUT/GET operations per second, on QEMU microvm with one virtio-blk disk
backed by a raw file (cache=writeback, QEMU's default), the configuration
`cargo oasis run --disk` uses.

    python3 bench/storage/storage.py [--runs N] [--seconds S] [--conns C]

Prints a Markdown report (and writes it to bench/storage/RESULTS.md with --write).
The Linux peer (the same tests with fio/dd in a Debian guest on the same disk file
and QEMU configuration) needs the guest image from bench/guest/; when that is absent
the report says so and shows Oasis only.
"""
import argparse, os, re, socket, statistics, subprocess, sys, tempfile, threading, time

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
    guest_img = os.path.join(ROOT, "bench", "guest")
    if not os.path.isdir(guest_img):
        lines += ["**Linux peer: not run** — the Debian guest image builder (`bench/guest/`) does not exist yet, "
                  "so these are Oasis numbers only (no ratios).", ""]
    with tempfile.TemporaryDirectory() as tmp:
        disk = os.path.join(tmp, "disk.img")
        runs = []
        for _ in range(a.runs):
            with open(disk, "wb") as f:
                f.truncate(256 << 20)
            runs.append(run_blkbench(k["blkbench"], disk))
        lines += ["## Block device through `BlockDevice` (blkbench, 64 MiB span, median of runs)", "",
                  "| test | Oasis | unit | runs |", "|---|---:|---|---|"]
        for name in runs[0][0]:
            vals = [r[0][name][0] for r in runs if name in r[0]]
            lines.append(f"| {name} | {statistics.median(vals):.1f} | {runs[0][0][name][1]} | {', '.join(f'{v:.0f}' for v in vals)} |")
        cpu = [r[1] for r in runs]
        lines += ["", f"QEMU CPU time for the whole blkbench run: median {statistics.median(cpu):.2f} s. "
                  f"Interrupt wakeups / lost-interrupt rescues (last run): {runs[-1][2]}.", ""]
        kvr = []
        for _ in range(a.runs):
            with open(disk, "wb") as f:
                f.truncate(64 << 20)
            kvr.append(run_kv(k["kv"], disk, a.conns, a.seconds, a.value))
        lines += [f"## kv over HTTP ({a.conns} keep-alive connections, {a.value}-byte values, 200 keys per connection, {a.seconds:.0f} s per phase)", "",
                  "| op | ops/s (median) | QEMU CPU µs/op | runs (ops/s) |", "|---|---:|---:|---|"]
        for op in ("PUT", "GET"):
            v = [r[op][0] for r in kvr]
            c = [r[op][1] for r in kvr]
            lines.append(f"| {op} | {statistics.median(v):.0f} | {statistics.median(c):.0f} | {', '.join(f'{x:.0f}' for x in v)} |")
        lines += ["", "PUTs are acknowledged after the record is flushed; concurrent PUTs share one flush (group commit)."]
    report = "\n".join(lines) + "\n"
    print(report)
    if a.write:
        open(os.path.join(HERE, "RESULTS.md"), "w").write(report)


if __name__ == "__main__":
    main()
