#!/usr/bin/env python3
"""TCP stream throughput into the `echo` unikernel over a TAP device, and QEMU's host
CPU cost, busy and idle.

The script creates a network namespace (`oasis-bench-PID`) holding a TAP device at
10.77.0.1/24, boots `echo` under QEMU inside it with `--ipv4=10.77.0.2/24`, and
from inside the namespace streams `--bytes` (1 GiB) to the discard port 9; the
clock stops when the guest, having read everything, closes the connection. For each
run it reports MiB/s and QEMU's process CPU time (utime + stime from
/proc/PID/stat) per GiB, next to the sender's own CPU use (to show the sender is not
the bottleneck). Then it measures QEMU's CPU time while the unikernel sits idle for
`--idle` seconds. Nothing leaves the namespace; it is deleted at the end, also on
errors or Ctrl-C.

    sudo python3 bench/net/tcp_stream.py [--bytes 1073741824] [--runs 3]
        [--machine microvm|pc] [--mem 64] [--idle 10] [--image PATH]

Needs root, /dev/net/tun, iproute2 and QEMU. Prints a Markdown table.
"""
import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOST_IP, GUEST_IP, PREFIX = "10.77.0.1", "10.77.0.2", 24
TAP = "oasistap0"
DISCARD_PORT = 9
CLK_TCK = os.sysconf("SC_CLK_TCK")
CHUNK = 1 << 20


def sender(host, port, nbytes):
    """Runs inside the namespace: streams `nbytes` and waits for the peer's close."""
    buf = memoryview(os.urandom(CHUNK))
    c0 = os.times()
    s = socket.create_connection((host, port), timeout=120)
    t0 = time.monotonic()
    left = nbytes
    while left > 0:
        n = s.send(buf[: min(CHUNK, left)])
        left -= n
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
    dt = time.monotonic() - t0
    s.close()
    c1 = os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    print(f"seconds {dt:.6f} cpu {cpu:.6f}", flush=True)


def accel():
    kvm = os.access("/dev/kvm", os.R_OK | os.W_OK)
    hw = re.search(r"\b(vmx|svm)\b", open("/proc/cpuinfo").read()) is not None
    return ("kvm", "host") if (kvm and hw) else ("tcg", "max")


def qemu_cmd(machine, kernel, mem, append):
    acc, cpu = accel()
    if machine == "microvm":
        m = ["-M", "microvm,acpi=off", "-global", "virtio-mmio.force-legacy=false"]
        nic, opts = "virtio-net-device", ""
    else:
        m = ["-M", machine]
        nic, opts = "virtio-net-pci", ",disable-legacy=on"
        if os.path.exists("/usr/share/qemu/qboot.rom"):
            m += ["-bios", "/usr/share/qemu/qboot.rom"]
    return ["qemu-system-x86_64", *m, "-accel", acc, "-cpu", cpu, "-m", f"{mem}M",
            "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
            "-no-reboot", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-netdev", f"tap,id=net0,ifname={TAP},script=no,downscript=no",
            "-device", f"{nic},netdev=net0{opts}",
            "-kernel", kernel, "-append", append]


def cpu_seconds(pid):
    """utime + stime of `pid`, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def run_ns(pid):
    """Nanoseconds all of `pid`'s threads spent on a CPU (/proc/PID/task/*/schedstat):
    the same quantity as utime + stime, at a resolution the idle figure needs."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # a thread that just ended
    return total


def build_image():
    out = subprocess.run(["cargo", "oasis", "build", "echo", "--release"], cwd=ROOT,
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    return out.strip().splitlines()[-1]


def sh(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


class Namespace:
    """A namespace with the TAP at HOST_IP; deleted on exit."""

    def __init__(self):
        self.name = f"oasis-bench-{os.getpid()}"

    def __enter__(self):
        sh("ip", "netns", "add", self.name)
        try:
            for a in (["link", "set", "lo", "up"],
                      ["tuntap", "add", "dev", TAP, "mode", "tap"],
                      ["addr", "add", f"{HOST_IP}/{PREFIX}", "dev", TAP],
                      ["link", "set", "dev", TAP, "up"]):
                sh("ip", "-n", self.name, *a)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        subprocess.run(["ip", "-n", self.name, "link", "del", TAP], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", self.name], stderr=subprocess.DEVNULL)

    def cmd(self, *args):
        return ["ip", "netns", "exec", self.name, *args]


class Guest:
    """QEMU inside the namespace; its console collected by a thread."""

    def __init__(self, ns, cmd):
        self.proc = subprocess.Popen(ns.cmd(*cmd), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, errors="replace")
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\r\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)
            self.cond.notify_all()

    def wait_for(self, needle, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for l in self.lines:
                    if l is None:
                        raise SystemExit("guest ended:\n" + self.text())
                    if needle in l:
                        return l
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SystemExit(f"no {needle!r} within {timeout} s:\n" + self.text())
                self.cond.wait(left)

    def text(self):
        return "\n".join(l for l in self.lines if l is not None)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bytes", type=int, default=1 << 30, help="bytes per run (1 GiB)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--machine", choices=["microvm", "pc", "q35"], default="microvm")
    ap.add_argument("--mem", type=int, default=64, help="guest RAM in MiB")
    ap.add_argument("--idle", type=float, default=10.0, help="idle measurement, seconds")
    ap.add_argument("--image", help="echo image (default: cargo oasis build echo --release)")
    ap.add_argument("--sender", nargs=3, metavar=("HOST", "PORT", "BYTES"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.sender:
        return sender(a.sender[0], int(a.sender[1]), int(a.sender[2]))

    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        raise SystemExit("needs root and /dev/net/tun (network namespace + TAP)")
    for tool in ("ip", "qemu-system-x86_64"):
        if not shutil.which(tool):
            raise SystemExit(f"`{tool}` not found (Debian: iproute2, qemu-system-x86)")
    image = a.image or build_image()
    acc = accel()[0]
    with Namespace() as ns:
        g = Guest(ns, qemu_cmd(a.machine, image, a.mem, f"--ipv4={GUEST_IP}/{PREFIX}"))
        try:
            g.wait_for("ready", 60)
            pid = g.proc.pid  # `ip netns exec` execs QEMU: same process
            # Idle: let boot-time work settle, then measure.
            time.sleep(1.0)
            c0, n0, t0 = cpu_seconds(pid), run_ns(pid), time.monotonic()
            time.sleep(a.idle)
            c1, n1, t1 = cpu_seconds(pid), run_ns(pid), time.monotonic()
            idle_pct = 100.0 * (c1 - c0) / (t1 - t0)
            idle_precise = 100.0 * (n1 - n0) / 1e9 / (t1 - t0)

            runs = []
            me = os.path.abspath(__file__)
            for i in range(a.runs):
                q0 = cpu_seconds(pid)
                out = subprocess.run(ns.cmd(sys.executable, me, "--sender", GUEST_IP,
                                            str(DISCARD_PORT), str(a.bytes)),
                                     check=True, stdout=subprocess.PIPE, text=True).stdout
                q1 = cpu_seconds(pid)
                m = re.search(r"seconds ([\d.]+) cpu ([\d.]+)", out)
                secs, scpu = float(m.group(1)), float(m.group(2))
                gib = a.bytes / (1 << 30)
                runs.append({
                    "mibs": a.bytes / (1 << 20) / secs,
                    "qemu_cpu_per_gib": (q1 - q0) / gib,
                    "qemu_cpu_pct": 100.0 * (q1 - q0) / secs,
                    "sender_pct": 100.0 * scpu / secs,
                    "secs": secs,
                })
                print(f"run {i + 1}: {runs[-1]['mibs']:.1f} MiB/s, QEMU "
                      f"{runs[-1]['qemu_cpu_per_gib']:.2f} CPU-s/GiB, sender "
                      f"{runs[-1]['sender_pct']:.0f}% of a core", file=sys.stderr, flush=True)
            if "panicked" in g.text():
                raise SystemExit("guest panicked:\n" + g.text())
        finally:
            g.stop()

    def med(k):
        return statistics.median(r[k] for r in runs)

    def span(k, fmt):
        return f"median {fmt.format(med(k))} (min {fmt.format(min(r[k] for r in runs))}, " \
               f"max {fmt.format(max(r[k] for r in runs))})"

    print(f"\n`sudo python3 bench/net/tcp_stream.py --bytes {a.bytes} --runs {a.runs} "
          f"--machine {a.machine}` ({acc.upper()}, {a.mem} MiB guest, TAP in a netns, "
          f"{a.bytes / (1 << 20):.0f} MiB per run to the discard port)\n")
    print("| metric | value |")
    print("|---|---|")
    print(f"| TCP stream into the guest | {span('mibs', '{:.1f}')} MiB/s |")
    print(f"| QEMU CPU time per GiB received | {span('qemu_cpu_per_gib', '{:.2f}')} s |")
    print(f"| QEMU CPU while streaming | {span('qemu_cpu_pct', '{:.0f}')} % of one core |")
    print(f"| sender CPU while streaming | {span('sender_pct', '{:.0f}')} % of one core |")
    print(f"| QEMU CPU with the guest idle ({a.idle:.0f} s) | {idle_pct:.2f} % of one core "
          f"(utime+stime, {100.0 / CLK_TCK / a.idle:.2f} % resolution); "
          f"{idle_precise:.3f} % from schedstat |")


if __name__ == "__main__":
    main()
