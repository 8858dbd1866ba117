# The end-to-end tests' network helper (written out and started by
# tests/src/nettests/netns.rs, `NetNs::helper`). Runs inside a namespace with `python3 nethelper.py COMMAND ARGS`:
#
# - `ping DST COUNT SIZE...`: ICMP echo requests over a raw socket; checks every
#   reply's id, sequence, checksum and payload; prints one line per reply.
# - `echo HOST PORT CONNS BYTES`: concurrent TCP echo exchanges, byte for byte;
#   prints `ok ... ports=P,...` (the clients' local ports).
# - `udp HOST PORT SIZE...`: UDP echo of one datagram per size.
# - `echoloop HOST PORT`: one connection echoing random-sized chunks until stdin
#   closes; prints `connected PORT` first and `rounds N bytes B` at the end.
# - `inject IFACE RATE SECONDS`: reads frames (u16 big-endian length + bytes) from
#   stdin and sends them on IFACE through an AF_PACKET socket at up to RATE
#   frames/s, slowing down when the TAP drops frames; fails past SECONDS.
#
# Exits non-zero with a message on any failure.

import os, random, socket, struct, sys, threading, time

def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

def pattern(seed, n):
    r = random.Random(seed)
    return r.randbytes(n)

def ping(dst, count, sizes):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    for seq in range(1, count + 1):
        payload = pattern(seq, sizes[(seq - 1) % len(sizes)])
        hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        pkt = struct.pack("!BBHHH", 8, 0, csum(hdr + payload), ident, seq) + payload
        got = False
        for _ in range(3):
            s.sendto(pkt, (dst, 0))
            deadline = time.time() + 3
            while not got and time.time() < deadline:
                s.settimeout(max(0.01, deadline - time.time()))
                try:
                    data, addr = s.recvfrom(65535)
                except socket.timeout:
                    break
                ic = data[(data[0] & 15) * 4:]
                if addr[0] != dst or len(ic) < 8:
                    continue
                t, c, _, i, sq = struct.unpack("!BBHHH", ic[:8])
                if t != 0 or i != ident or sq != seq:
                    continue
                if csum(ic) != 0:
                    fail("reply seq=%d has a bad ICMP checksum" % seq)
                if ic[8:] != payload:
                    fail("reply seq=%d: payload differs (%d bytes sent, %d back)" % (seq, len(payload), len(ic) - 8))
                print("reply from %s: seq=%d bytes=%d ttl=%d" % (dst, seq, len(payload), data[8]), flush=True)
                got = True
            if got:
                break
        if not got:
            fail("no echo reply for seq=%d" % seq)

def echo_one(host, port, seed, n, ports, errors):
    try:
        data = pattern(seed, n)
        s = socket.create_connection((host, port), timeout=60)
        ports.append(s.getsockname()[1])
        def send():
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        t = threading.Thread(target=send)
        t.start()
        back = bytearray()
        while True:
            b = s.recv(65536)
            if not b:
                break
            back += b
        t.join()
        s.close()
        if bytes(back) != data:
            at = next((i for i, (a, b) in enumerate(zip(data, back)) if a != b), min(len(data), len(back)))
            errors.append("conn %d: sent %d bytes, got %d back, first difference at %d" % (seed, len(data), len(back), at))
    except Exception as e:
        errors.append("conn %d: %r" % (seed, e))

def echo(host, port, conns, n):
    ports, errors = [], []
    ts = [threading.Thread(target=echo_one, args=(host, port, i, n, ports, errors)) for i in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        fail("; ".join(errors))
    print("ok conns=%d bytes=%d ports=%s" % (conns, n, ",".join(map(str, ports))), flush=True)

def udp(host, port, sizes):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))
    for i, n in enumerate(sizes):
        d = pattern(1000 + i, n)
        for _ in range(5):
            s.send(d)
            s.settimeout(2)
            try:
                while s.recv(65535) != d:
                    pass
                break
            except socket.timeout:
                continue
        else:
            fail("no UDP echo of datagram %d (%d bytes)" % (i, n))
    print("ok datagrams=%d" % len(sizes), flush=True)

def echoloop(host, port):
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    s = socket.create_connection((host, port), timeout=30)
    print("connected %d" % s.getsockname()[1], flush=True)
    r = random.Random(42)
    rounds = total = 0
    while not stop.is_set():
        d = r.randbytes(r.randint(1, 16384))
        s.sendall(d)
        back = bytearray()
        while len(back) < len(d):
            b = s.recv(len(d) - len(back))
            if not b:
                fail("connection closed after %d rounds" % rounds)
            back += b
        if bytes(back) != d:
            fail("round %d: echo differs" % rounds)
        rounds += 1
        total += len(d)
    s.close()
    print("rounds %d bytes %d" % (rounds, total), flush=True)

def tx_dropped(iface):
    try:
        with open("/sys/class/net/%s/statistics/tx_dropped" % iface) as f:
            return int(f.read())
    except OSError:
        return 0

def inject(iface, rate, limit):
    raw = sys.stdin.buffer.read()
    frames, i = [], 0
    while i + 2 <= len(raw):
        (n,) = struct.unpack_from("!H", raw, i)
        frames.append(raw[i + 2:i + 2 + n])
        i += 2 + n
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    d0 = tx_dropped(iface)
    t0 = time.time()
    sent = errors = 0
    batch, slow = 50, 1.0
    for k in range(0, len(frames), batch):
        for f in frames[k:k + batch]:
            try:
                s.send(f)
                sent += 1
            except OSError:
                errors += 1
        if tx_dropped(iface) > d0 + (k // 100):
            slow = min(slow * 1.5, 8.0)
        else:
            slow = max(slow / 1.05, 1.0)
        time.sleep(batch * slow / rate)
        if time.time() - t0 > limit:
            fail("injected only %d of %d frames in %d s" % (k + batch, len(frames), limit))
    dt = time.time() - t0
    print("sent %d errors %d dropped %d seconds %.1f" % (sent, errors, tx_dropped(iface) - d0, dt), flush=True)

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "ping":
    ping(args[0], int(args[1]), [int(a) for a in args[2:]] or [56])
elif cmd == "echo":
    echo(args[0], int(args[1]), int(args[2]), int(args[3]))
elif cmd == "udp":
    udp(args[0], int(args[1]), [int(a) for a in args[2:]])
elif cmd == "echoloop":
    echoloop(args[0], int(args[1]))
elif cmd == "inject":
    inject(args[0], float(args[1]), float(args[2]))
else:
    fail("unknown command " + cmd)
