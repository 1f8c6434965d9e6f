#!/usr/bin/env python3
"""A pod of the NetworkPolicy tests: `serve PORT...` answers TCP and UDP on each port (both
families) until killed; `probe` reads [[addr, port, proto], ...] on stdin and prints which
connected, all in parallel, each within the timeout."""
import json, socket, sys, threading

TIMEOUT = float(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[1] == 'probe' else 0.5


def serve(ports):
    def tcp(sock):
        while True:
            c, _ = sock.accept()
            try:
                c.sendall(b'ok')
            except OSError:
                pass
            c.close()

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
    if sys.argv[1] == 'serve':
        serve([int(p) for p in sys.argv[2:]])
    else:
        probe(json.load(sys.stdin))
