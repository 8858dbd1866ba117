"""Shared helpers for Oasis benchmarks: QEMU command lines, boot-to-ready timing,
process CPU accounting, statistics. Imported by bench/run and the per-area scripts.

Everything measures; nothing here asserts a result.
"""
import os, re, socket, statistics, subprocess, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(ROOT, "target", "x86_64-unknown-none", "release")


def accel():
    """('kvm', reason) only with a usable /dev/kvm and vmx/svm; else ('tcg', reason)."""
    kvm = os.access("/dev/kvm", os.R_OK | os.W_OK)
    hw = re.search(r"\b(vmx|svm)\b", open("/proc/cpuinfo").read()) is not None
    if kvm and hw:
        return "kvm", "hardware virtualization"
    return "tcg", "no usable hardware virtualization (vmx/svm)"


def machine_description():
    info = open("/proc/cpuinfo").read()
    m = re.search(r"model name\s*:\s*(.*)", info)
    mem = int(re.search(r"MemTotal:\s*(\d+)", open("/proc/meminfo").read()).group(1)) // 1024 // 1024
    qv = subprocess.run(["qemu-system-x86_64", "--version"], stdout=subprocess.PIPE).stdout.decode().splitlines()[0]
    return f"{m.group(1) if m else 'unknown CPU'}, {os.cpu_count()} CPUs, {mem} GiB; {qv}; accel {accel()[0]}"


def build(apps, env=None):
    subprocess.run(["cargo", "build", "-q", "--release", "--target", "x86_64-unknown-none"] + sum((["-p", a] for a in apps), []),
                   cwd=ROOT, check=True, env=dict(os.environ, **(env or {})))
    return {a: os.path.join(TARGET, a) for a in apps}


def stripped_size(path, tmpdir):
    out = os.path.join(tmpdir, os.path.basename(path) + ".stripped")
    subprocess.run(["objcopy", "--strip-all", path, out], check=True)
    return os.path.getsize(out)


def section_size(path, name):
    out = subprocess.run(["objdump", "-h", path], stdout=subprocess.PIPE).stdout.decode()
    for line in out.splitlines():
        p = line.split()
        if len(p) > 2 and p[1] == name:
            return int(p[2], 16)
    return 0


SYSTEM_QBOOT = "/usr/share/qemu/qboot.rom"


def qemu_cmd(machine, kernel, mem=64, append="", initrd=None, net=None, extra=(), qemu=("qemu-system-x86_64",), bios=SYSTEM_QBOOT):
    """QEMU as `cargo oasis run` starts it. `net`: None, ('user', [(host, guest)]) or
    ('tap', ifname). `qemu`: the command that runs QEMU (a carried binary needs its
    loader); `bios`: firmware for pc/q35 (qboot when present)."""
    acc, _ = accel()
    cmd = list(qemu)
    if machine == "microvm":
        # acpi=off: QEMU lists virtio-mmio devices on the command line (our guest);
        # a Linux guest needs ACPI to find them (Debian lacks VIRTIO_MMIO_CMDLINE_DEVICES).
        cmd += ["-M", "microvm,acpi=off" if initrd is None else "microvm", "-global", "virtio-mmio.force-legacy=false"]
        nic = "virtio-net-device"
    else:
        cmd += ["-M", machine]
        if bios and os.path.exists(bios):
            cmd += ["-bios", bios]
        nic = "virtio-net-pci,disable-legacy=on,romfile="
    cmd += ["-accel", acc, "-cpu", "host" if acc == "kvm" else "max", "-smp", "1", "-m", f"{mem}M",
            "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-kernel", kernel]
    if initrd:
        cmd += ["-initrd", initrd]
    if append:
        cmd += ["-append", append]
    if net and net[0] == "user":
        fw = "".join(f",hostfwd=tcp:127.0.0.1:{h}-:{g}" for h, g in net[1])
        cmd += ["-netdev", f"user,id=n0{fw}", "-device", f"{nic},netdev=n0"]
    elif net and net[0] == "tap":
        cmd += ["-netdev", f"tap,id=n0,ifname={net[1]},script=no,downscript=no", "-device", f"{nic},netdev=n0"]
    return cmd + list(extra)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http_probe(port, host="127.0.0.1"):
    s = socket.create_connection((host, port), timeout=0.5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = s.recv(64)
    s.close()
    return data.startswith(b"HTTP/1.1 200")


def http_concurrent_probe(port, host="127.0.0.1", clients=1000, seconds=60):
    """`clients` keep-alive connections at once, each sending GET / and reading the
    whole 200 response: True only if every one is served within `seconds`. The
    memory floor *under load* is the smallest -m for which this holds."""
    import resource
    import selectors
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < clients + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, clients + 1024), hard))
    sel = selectors.DefaultSelector()
    state = {}
    deadline = time.monotonic() + seconds
    try:
        for _ in range(clients):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((host, port))
            state[s] = bytearray()
            sel.register(s, selectors.EVENT_WRITE)
        served = 0
        while state and time.monotonic() < deadline:
            for key, ev in sel.select(timeout=1):
                s = key.fileobj
                if ev & selectors.EVENT_WRITE:
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                        return False
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    sel.modify(s, selectors.EVENT_READ)
                    continue
                try:
                    chunk = s.recv(65536)
                except OSError:
                    return False
                if not chunk:
                    return False
                buf = state[s]
                buf += chunk
                head, sep, body = bytes(buf).partition(b"\r\n\r\n")
                if not sep:
                    continue
                if not head.startswith(b"HTTP/1.1 200"):
                    return False
                length = next((int(l.split(b":", 1)[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")), None)
                if length is not None and len(body) >= length:
                    served += 1
                    sel.unregister(s)
                    s.close()
                    del state[s]
        return served == clients
    finally:
        for s in state:
            s.close()
        sel.close()


def echo_probe(port, host="127.0.0.1"):
    s = socket.create_connection((host, port), timeout=0.5)
    s.sendall(b"ping")
    data = s.recv(16)
    s.close()
    return data == b"ping"


class Guest:
    """A running QEMU whose console is collected without blocking."""

    def __init__(self, cmd, prefix=()):
        self.t0 = time.perf_counter()
        self.p = subprocess.Popen(list(prefix) + cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        os.set_blocking(self.p.stdout.fileno(), False)
        self.console = b""

    def pump(self):
        try:
            chunk = self.p.stdout.read()
        except (BlockingIOError, ValueError):
            chunk = None
        if chunk:
            self.console += chunk
        return self.p.poll() is None

    def wait_for(self, needle, timeout=60):
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            alive = self.pump()
            if needle in self.console:
                return True
            if not alive:
                return False
            time.sleep(0.0005)
        return False

    def cpu_seconds(self):
        """utime + stime of the QEMU process (descendants excluded)."""
        st = open(f"/proc/{self.p.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


def boot_to_ready(cmd, ready, probe, port, timeout=60, prefix=()):
    """ms from starting QEMU to the first successful `probe(port)` after the guest
    printed `ready`, or None if it never got there."""
    g = Guest(cmd, prefix)
    try:
        if not g.wait_for(ready, timeout):
            return None
        end = time.perf_counter() + 10
        while time.perf_counter() < end:
            try:
                if probe(port):
                    return (time.perf_counter() - g.t0) * 1000
            except OSError:
                pass
            time.sleep(0.001)
        return None
    finally:
        g.stop()


def memory_floor(ok, lo=2, hi=256):
    """Smallest MiB in [lo, hi] for which ok(mib) holds (assumes monotonic)."""
    if not ok(hi):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


BOOT_PHASE = re.compile(r"DEBUG boot:\s+(\d+)\.(\d{3}) ms  (.+?)\s*$")
BOOT_EVENT = re.compile(r"^\[\s*(\d+)\.(\d{6})\] DEBUG boot: ([A-Za-z][^(]*?)(?: \(.*\))?\s*$")


def boot_trace(console):
    """The boot phases an Oasis guest booted with `-l boot:debug` printed (text log
    format), in order: [(phase, ms since PVH entry)], guest clock. Phase lines carry
    their own time; later events ("network configured") the log line's timestamp.

    >>> boot_trace("[    0.001000] DEBUG boot:    0.792 ms  64-bit entry, IDT\\r\\n"
    ...            "hello\\n[    0.045250] DEBUG boot: network configured (10.0.0.2)\\n")
    [('64-bit entry, IDT', 0.792), ('network configured', 45.25)]
    """
    out = []
    for line in console.splitlines():
        line = line.strip()
        m = BOOT_PHASE.search(line)
        if m:
            out.append((m.group(3), int(m.group(1)) + int(m.group(2)) / 1000))
            continue
        m = BOOT_EVENT.search(line)
        if m:
            out.append((m.group(3), int(m.group(1)) * 1000 + int(m.group(2)) / 1000))
    return out


def med(xs):
    return statistics.median(xs) if xs else None


def spread(xs):
    if not xs:
        return "n/a"
    return f"{statistics.median(xs):.1f} (p10 {sorted(xs)[len(xs) // 10]:.1f}, max {max(xs):.1f})"


class NsProbe:
    """Runs probes from a thread that has entered network namespace `ns` (setns
    applies to the calling thread only), so probing costs no process start."""

    def __init__(self, ns):
        import ctypes, queue, threading
        self.req, self.resp = queue.Queue(), queue.Queue()
        libc = ctypes.CDLL(None, use_errno=True)
        ready = threading.Event()
        self.error = None

        def run():
            fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
            if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                self.error = OSError(ctypes.get_errno(), "setns")
            os.close(fd)
            ready.set()
            while True:
                item = self.req.get()
                if item is None:
                    return
                fn, args = item
                try:
                    self.resp.put(fn(*args))
                except OSError:
                    self.resp.put(False)

        self.t = threading.Thread(target=run, daemon=True)
        self.t.start()
        ready.wait()
        if self.error:
            raise self.error

    def call(self, fn, *args):
        self.req.put((fn, args))
        return self.resp.get()

    def close(self):
        self.req.put(None)
