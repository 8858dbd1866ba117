#!/usr/bin/env python3
"""Measures Oasis images under real KVM on a machine that has hardware virtualization.

Runs on a second machine (the "device" lent to some sessions) with a carried QEMU:
    python3 bench/kvm_device.py --qemu-dir .devqemu --images .devqemu/images --out OUT

Measures, for microvm and pc: hello's guest boot time (PVH entry -> main, TSC),
wall time from QEMU start to exit, QEMU's floor (a guest that exits at its first
instruction), echo and www boot-to-ready (first TCP echo / HTTP 200 through a user
network port forward), and the www memory floor. Prints Markdown.
"""
import argparse, os, re, socket, statistics, subprocess, sys, time

def qemu_base(a, machine, accel, mem):
    q = os.path.abspath(a.qemu_dir)
    env = dict(os.environ, QEMU_MODULE_DIR=os.path.join(q, "modules"))
    cmd = [os.path.join(q, "lib/ld-linux-x86-64.so.2"), "--library-path", os.path.join(q, "lib"),
           os.path.join(q, "qemu-system-x86_64"), "-L", os.path.join(q, "share")]
    m = "microvm,acpi=off" if machine == "microvm" else machine
    legacy_off = ["-global", "virtio-mmio.force-legacy=false"] if machine == "microvm" else []
    cmd += ["-M", m, "-accel", accel, "-cpu", "host" if accel == "kvm" else "max", "-m", f"{mem}M",
            "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"] + legacy_off
    if machine != "microvm":
        cmd += ["-bios", os.path.join(q, "share/qboot.rom")]
    return cmd, env

def run_hello(a, machine, accel, kernel, n):
    walls, boots = [], []
    for _ in range(n):
        cmd, env = qemu_base(a, machine, accel, 16)
        t0 = time.perf_counter()
        p = subprocess.run(cmd + ["-kernel", kernel], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        walls.append((time.perf_counter() - t0) * 1000)
        out = p.stdout.decode(errors="replace")
        m = re.search(r"boot: (\d+) us", out)
        if m:
            boots.append(int(m.group(1)))
        elif kernel.endswith("hello"):
            print("hello failed:", out[-500:], file=sys.stderr)
    return walls, boots

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def boot_to_ready(a, machine, accel, kernel, guest_port, probe, mem=64):
    port = free_port()
    cmd, env = qemu_base(a, machine, accel, mem)
    dev = "virtio-net-device" if machine == "microvm" else "virtio-net-pci,disable-legacy=on,romfile="
    cmd += ["-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:{guest_port}", "-device", f"{dev},netdev=n0",
            "-kernel", kernel]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # Wait for the readiness line, then the first successful request: probing
        # blindly through slirp costs a timeout per early attempt.
        buf = b""
        os.set_blocking(p.stdout.fileno(), False)
        while time.perf_counter() - t0 < 30:
            if p.poll() is not None:
                return None  # the guest exited (e.g. out of memory)
            chunk = p.stdout.read() or b""
            buf += chunk
            if b"ready" in buf:
                try:
                    if probe(port):
                        return (time.perf_counter() - t0) * 1000
                except OSError:
                    pass
            time.sleep(0.0005)
        return None
    finally:
        p.kill(); p.wait()

def http_probe(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=0.2)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = s.recv(64)
    s.close()
    return data.startswith(b"HTTP/1.1 200")

def echo_probe(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=0.2)
    s.sendall(b"ping")
    data = s.recv(16)
    s.close()
    return data == b"ping"

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qemu-dir", default=".devqemu")
    ap.add_argument("--images", default=".devqemu/images")
    ap.add_argument("--runs", type=int, default=20)
    a = ap.parse_args()
    flags = open("/proc/cpuinfo").read()
    hw = bool(re.search(r"\b(vmx|svm)\b", flags))
    kvm = os.access("/dev/kvm", os.R_OK | os.W_OK)
    cpu = re.search(r"model name\s*:\s*(.*)", flags)
    print(f"machine: {cpu.group(1) if cpu else '?'}, {os.cpu_count()} cpus, /dev/kvm={'yes' if kvm else 'no'}, vmx/svm={'yes' if hw else 'no'}")
    accel = "kvm" if (kvm and hw) else "tcg"
    print(f"accel: {accel}\n")
    img = lambda n: os.path.abspath(os.path.join(a.images, n))
    med = statistics.median
    print("| measurement | microvm | pc |\n|---|---|---|")
    rows = {}
    for m in ("microvm", "pc"):
        w, b = run_hello(a, m, accel, img("hello"), a.runs)
        fw, _ = run_hello(a, m, accel, img("floor.elf"), a.runs)
        rows.setdefault("hello guest boot, PVH entry -> main (us), median [min-max]", []).append(f"{med(b)} [{min(b)}-{max(b)}]" if b else "n/a")
        rows.setdefault("hello wall, QEMU start -> exit (ms), median", []).append(f"{med(w):.1f}")
        rows.setdefault("QEMU floor wall (ms), median", []).append(f"{med(fw):.1f}")
        rows.setdefault("hello above floor minus its 300 ms of sleeps (ms)", []).append(f"{med(w) - med(fw) - 300:.1f}")
        er = [boot_to_ready(a, m, accel, img("echo"), 7, echo_probe) for _ in range(10)]
        er = [x for x in er if x]
        rows.setdefault("echo start -> first echo reply (ms), median of 10", []).append(f"{med(er):.1f}" if er else "failed")
        wr = [boot_to_ready(a, m, accel, img("www"), 80, http_probe) for _ in range(10)]
        wr = [x for x in wr if x]
        rows.setdefault("www start -> first HTTP 200 (ms), median of 10", []).append(f"{med(wr):.1f}" if wr else "failed")
    for k, v in rows.items():
        print(f"| {k} | {v[0]} | {v[1]} |")
    # Memory floor of www on microvm by bisection.
    lo, hi = 2, 64
    while lo < hi:
        mid = (lo + hi) // 2
        ok = boot_to_ready(a, "microvm", accel, img("www"), 80, http_probe, mem=mid) is not None
        if ok: hi = mid
        else: lo = mid + 1
    print(f"\nwww memory floor (microvm, {accel}): {lo} MiB")

if __name__ == "__main__":
    main()
