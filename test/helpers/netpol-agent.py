#!/usr/bin/env python3
"""A pod of the NetworkPolicy tests:

  serve PORT...            answers TCP and UDP on each port (both families) until killed
  probe TIMEOUT            reads [[addr, port, proto], ...] on stdin; prints which connected
  stream ADDR PORT SECS    a TCP connection echoing a byte every 5 ms; prints its gaps and
                           whether it was cut (no echo for 1 s)
  sniff PORT SECS          counts IP packets to PORT arriving on any interface, even one that
                           appears later (AF_PACKET, bound to none)
  spray PREFIX FIRST LAST PORT SECS   UDP datagrams to PREFIX.FIRST .. PREFIX.LAST, round-robin
"""
import json, socket, struct, sys, threading, time

TIMEOUT = float(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[1] == 'probe' else 0.5


def serve(ports):
    def conn(c):
        # The first byte says which: 'e' echoes for as long as the client sends.
        try:
            c.settimeout(0.3)
            first = c.recv(1)
        except OSError:
            first = b''
        if first == b'e':
            c.settimeout(None)
            try:
                c.sendall(first)
                while True:
                    d = c.recv(64)
                    if not d:
                        break
                    c.sendall(d)
            except OSError:
                pass
        else:
            try:
                c.sendall(b'ok')
            except OSError:
                pass
        c.close()

    def tcp(sock):
        while True:
            c, _ = sock.accept()
            threading.Thread(target=conn, args=(c,), daemon=True).start()

    def udp(sock):
        while True:
            data, peer = sock.recvfrom(2048)
            try:
                sock.sendto(b'ok', peer)
            except OSError:
                pass

    threads = []
    for fam, any_addr in ((socket.AF_INET, '0.0.0.0'), (socket.AF_INET6, '::')):
        for p in ports:
            try:
                t = socket.socket(fam, socket.SOCK_STREAM)
                t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if fam == socket.AF_INET6:
                    t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                t.bind((any_addr, p))
                t.listen(128)
                u = socket.socket(fam, socket.SOCK_DGRAM)
                if fam == socket.AF_INET6:
                    u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                u.bind((any_addr, p))
            except OSError:
                continue  # no such family in this pod
            threads += [threading.Thread(target=tcp, args=(t,), daemon=True), threading.Thread(target=udp, args=(u,), daemon=True)]
    for t in threads:
        t.start()
    print('ready', flush=True)
    threading.Event().wait()


def probe_one(addr, port, proto):
    fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM if proto == 'TCP' else socket.SOCK_DGRAM)
    s.settimeout(TIMEOUT)
    try:
        if proto == 'TCP':
            s.connect((addr, port))
            s.sendall(b'p')
            return s.recv(2) == b'ok'
        # UDP: a few tries, one answer is enough
        for _ in range(3):
            s.sendto(b'hi', (addr, port))
            try:
                data, _ = s.recvfrom(16)
                if data == b'ok':
                    return True
            except socket.timeout:
                continue
        return False
    except OSError:
        return False
    finally:
        s.close()


def stream(addr, port, secs):
    fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
    s = socket.create_connection((addr, port), timeout=2) if fam == socket.AF_INET else socket.socket(fam, socket.SOCK_STREAM)
    if fam == socket.AF_INET6:
        s.settimeout(2)
        s.connect((addr, port))
    s.sendall(b'e')
    s.recv(1)
    s.settimeout(1.0)
    start = last = time.time()
    sent = echoed = 0
    max_gap = 0.0
    cut_after = None
    while time.time() - start < secs:
        try:
            s.sendall(b'x')
            sent += 1
            if s.recv(1) == b'x':
                echoed += 1
                now = time.time()
                max_gap = max(max_gap, now - last)
                last = now
        except OSError:
            cut_after = time.time() - start
            break
        time.sleep(0.005)
    print(json.dumps({'sent': sent, 'echoed': echoed, 'maxGapMs': round(max_gap * 1000), 'cut': cut_after is not None, 'cutAfterMs': None if cut_after is None else round(cut_after * 1000)}), flush=True)


def sniff(port, secs):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.settimeout(0.1)
    end = time.time() + secs
    n = 0
    print('ready', flush=True)
    while time.time() < end:
        try:
            f, addr = s.recvfrom(2048)
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        eth = struct.unpack('!H', f[12:14])[0]
        if eth == 0x0800 and f[23] in (6, 17):
            ihl = (f[14] & 0xf) * 4
            dport = struct.unpack('!H', f[14 + ihl + 2:14 + ihl + 4])[0]
        elif eth == 0x86dd and f[20] in (6, 17):
            dport = struct.unpack('!H', f[54 + 2:54 + 4])[0]
        else:
            continue
        if dport == port:
            n += 1
    print(n, flush=True)


def spray(prefix, first, last, port, secs):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    end = time.time() + secs
    n = 0
    while time.time() < end:
        for i in range(first, last + 1):
            try:
                s.sendto(b'spray', ('%s.%d' % (prefix, i), port))
                n += 1
            except OSError:
                pass
        time.sleep(0.001)
    print(n, flush=True)


def probe(targets):
    out = [False] * len(targets)

    def run(i, t):
        out[i] = probe_one(*t)

    ts = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(targets)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(json.dumps(out))


if __name__ == '__main__':
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == 'serve':
        serve([int(p) for p in args])
    elif cmd == 'stream':
        stream(args[0], int(args[1]), float(args[2]))
    elif cmd == 'sniff':
        sniff(int(args[0]), float(args[1]))
    elif cmd == 'spray':
        spray(args[0], int(args[1]), int(args[2]), int(args[3]), float(args[4]))
    else:
        probe(json.load(sys.stdin))
