#!/usr/bin/env python3
"""Packets for the hostile-pod tests, run inside a test namespace:

  forge IFACE DST_MAC SRC DST SPORT DPORT COUNT   raw UDP frames with any source address
  send SRC_PORT DST DPORT COUNT                    ordinary UDP datagrams from a fixed port;
                                                   prints how many replies came back from DST:DPORT
  echo PORT SECONDS                                echoes every datagram; prints how many it got
"""
import socket, struct, sys, time


def csum(b):
    if len(b) % 2:
        b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def frame(dst_mac, src_mac, src, dst, sport, dport, payload):
    v6 = ':' in src
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    s, d = socket.inet_pton(fam, src), socket.inet_pton(fam, dst)
    udp_len = 8 + len(payload)
    pseudo = s + d + (struct.pack('!IxxxB', udp_len, 17) if v6 else struct.pack('!xBH', 17, udp_len))
    udp = struct.pack('!HHHH', sport, dport, udp_len, 0) + payload
    c = csum(pseudo + udp) or 0xffff
    udp = udp[:6] + struct.pack('!H', c) + udp[8:]
    if v6:
        ip = struct.pack('!IHBB', 6 << 28, udp_len, 17, 64) + s + d
        eth_type = 0x86dd
    else:
        hdr = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + udp_len, 1, 0, 64, 17, 0, s, d)
        ip = hdr[:10] + struct.pack('!H', csum(hdr)) + hdr[12:]
        eth_type = 0x0800
    return dst_mac + src_mac + struct.pack('!H', eth_type) + ip + udp


def mac(s):
    return bytes(int(x, 16) for x in s.split(':'))


def main(a):
    if a[0] == 'forge':
        iface, dst_mac, src, dst, sport, dport, count = a[1:8]
        raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        raw.bind((iface, 0))
        src_mac = raw.getsockname()[4]
        f = frame(mac(dst_mac), src_mac, src, dst, int(sport), int(dport), b'forged')
        for _ in range(int(count)):
            raw.send(f)
            time.sleep(0.01)
    elif a[0] == 'send':
        sport, dst, dport, count = int(a[1]), a[2], int(a[3]), int(a[4])
        fam = socket.AF_INET6 if ':' in dst else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('::' if fam == socket.AF_INET6 else '0.0.0.0', sport))
        s.connect((dst, dport))  # a connected socket takes replies from DST:DPORT only
        s.settimeout(0.3)
        got = 0
        for _ in range(count):
            s.send(b'hello')
            try:
                s.recv(100)
                got += 1
            except (socket.timeout, ConnectionRefusedError):
                pass
        print(got)
    elif a[0] == 'echo':
        port, seconds = int(a[1]), float(a[2])
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(('::', port))
        s.settimeout(0.1)
        counts = {}
        end = time.time() + seconds
        while time.time() < end:
            try:
                data, peer = s.recvfrom(100)
            except socket.timeout:
                continue
            counts[data.decode()] = counts.get(data.decode(), 0) + 1
            s.sendto(data, peer)
        print(' '.join('%s=%d' % kv for kv in sorted(counts.items())) or 'none')


main(sys.argv[1:])
