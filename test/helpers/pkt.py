#!/usr/bin/env python3
"""Packets for the hostile-pod tests, run inside a test namespace:

  forge IFACE DST_MAC SRC DST SPORT DPORT COUNT   raw UDP frames with any source address
  send SRC_PORT DST DPORT COUNT                    ordinary UDP datagrams from a fixed port;
                                                   prints how many replies came back from DST:DPORT
  echo PORT SECONDS                                echoes every datagram; prints how many it got
  icmp DST TYPE CODE ID TAG COUNT                  raw ICMP (ICMPv6 for an IPv6 DST) messages of any
                                                   type, id and TAG as payload, from the pod's own address
  icmperr DST INNER_SRC INNER_DST SPORT DPORT COUNT  port unreachable to DST, quoting a UDP datagram
                                                   INNER_SRC:SPORT -> INNER_DST:DPORT
  icmpwatch SECONDS TAG                            counts ICMP and ICMPv6 messages carrying TAG
  udpwait DST DPORT SPORT SECONDS                  a connected UDP socket sends once, then reads;
                                                   prints "refused" if an ICMP error reached it, else "ok N"
  frag DST DPORT SPORT SIZE                        one UDP datagram of SIZE bytes (fragmented on the way);
                                                   prints the size of the answer, 0 for none
  bigecho PORT SIZE SECONDS                        answers every datagram with SIZE bytes
  dstopts DST DPORT SPORT                          one UDP datagram with a destination-options header;
                                                   prints 1 when answered
  vxlan NODE PORT VNI INNER_DMAC INNER_SRC INNER_DST DPORT COUNT
                                                   UDP to NODE:PORT carrying a VXLAN frame with an inner
                                                   UDP datagram INNER_SRC:4242 -> INNER_DST:DPORT "forged"
  ipip DST INNER_SRC INNER_DST DPORT COUNT [PROTO] the same inner datagram in IPIP (protocol 4), or in
                                                   IP protocol PROTO (47: behind a GRE header)
  lonefrag DST COUNT                               a later IPv4 fragment (UDP) whose first one is never sent
  sniffproto IFACE PROTO SECONDS                   counts IPv4 frames of protocol PROTO seen on IFACE
  sniff IFACE TAG SECONDS                          counts frames of any type carrying TAG seen on IFACE
  rawframe IFACE DST_MAC SRC DST KIND TAG COUNT    raw frames from IFACE to DST (KIND: plain, vlan1/vlan2 — a UDP
                                                   datagram behind one or two vid-0 802.1Q tags; lsrr — IPv4
                                                   UDP with a loose source route option; rh6 — IPv6 UDP
                                                   behind a routing header with segments left; ext5err —
                                                   ICMPv6 port unreachable behind 5 destination-options
                                                   headers, quoting TAG as "INNER_SRC,INNER_DST,SPORT,DPORT")
  spray DST FIRST_PORT COUNT                       one UDP datagram to each of COUNT ports of DST
  bigerr IFACE DST_MAC SRC DST INNER_SRC INNER_DST SPORT DPORT COUNT
                                                   an ICMPv4 port unreachable of 5,000 bytes whose ICMP header
                                                   lies beyond the skb's linear area (PACKET_VNET_HDR: only
                                                   Ethernet and IPv4 headers linear); the sender needs MTU 9000
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


def udp_ip(src, dst, sport, dport, payload):
    """An IPv4 header and UDP datagram, checksums done."""
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    udp_len = 8 + len(payload)
    udp = struct.pack('!HHHH', sport, dport, udp_len, 0) + payload
    c = csum(s + d + struct.pack('!xBH', 17, udp_len) + udp) or 0xffff
    udp = udp[:6] + struct.pack('!H', c) + udp[8:]
    hdr = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + udp_len, 7, 0, 64, 17, 0, s, d)
    return hdr[:10] + struct.pack('!H', csum(hdr)) + hdr[12:] + udp


def icmp_sock(dst):
    v6 = ':' in dst
    return socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP), v6


def icmp_msg(v6, typ, code, rest):
    m = struct.pack('!BBH', typ, code, 0) + rest
    # The kernel computes the ICMPv6 checksum of a raw socket's messages itself.
    return m if v6 else m[:2] + struct.pack('!H', csum(m)) + m[4:]


def mac(s):
    return bytes(int(x, 16) for x in s.split(':'))



def ip6hdr(s, d, nh, payload):
    return struct.pack('!IHBB', 6 << 28, len(payload), nh, 64) + s + d + payload


def raw_frame(dst_mac, src_mac, src, dst, kind, tag):
    """The frames of the rawframe command (see the docstring)."""
    v6 = ':' in src
    if kind in ('plain', 'vlan1', 'vlan2', 'lsrr'):
        ip = udp_ip(src, dst, 4243, 80, tag)
        if kind == 'lsrr':
            # LSRR (0x83) listing the destination itself, then end of options: IHL 7.
            opt = bytes([0x83, 7, 4]) + socket.inet_aton(dst) + b'\0'
            hdr = bytearray(ip[:20])
            hdr[0] = 0x47
            hdr[2:4] = struct.pack('!H', len(ip) + 8)
            hdr[10:12] = b'\0\0'
            hdr = bytes(hdr) + opt
            ip = hdr[:10] + struct.pack('!H', csum(hdr)) + hdr[12:] + ip[20:]
        tags = {'vlan1': 1, 'vlan2': 2}.get(kind, 0)
        return dst_mac + src_mac + struct.pack('!HH', 0x8100, 0) * tags + struct.pack('!H', 0x0800) + ip
    s, d = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
    if kind == 'rh6':
        udp = struct.pack('!HHHH', 4243, 80, 8 + len(tag), 0) + tag
        c = csum(s + d + struct.pack('!IxxxB', len(udp), 17) + udp) or 0xffff
        udp = udp[:6] + struct.pack('!H', c) + udp[8:]
        # Type 0 routing header, one address left to visit (segments left 1).
        rh = struct.pack('!BBBBI', 17, 2, 0, 1, 0) + d
        return dst_mac + src_mac + struct.pack('!H', 0x86dd) + ip6hdr(s, d, 43, rh + udp)
    # ext5err: the quoted datagram is named by tag.
    isrc, idst, sport, dport = tag.decode().split(',')
    si, di = socket.inet_pton(socket.AF_INET6, isrc), socket.inet_pton(socket.AF_INET6, idst)
    qudp = struct.pack('!HHHH', int(sport), int(dport), 13, 0) + b'hello'
    inner = struct.pack('!IHBB', 6 << 28, 13, 17, 64) + si + di + qudp
    icmp = struct.pack('!BBHI', 1, 4, 0, 0) + inner
    c = csum(s + d + struct.pack('!IxxxB', len(icmp), 58) + icmp)
    icmp = icmp[:2] + struct.pack('!H', c) + icmp[4:]
    exts = b''
    for i in range(5):
        exts += bytes([58 if i == 4 else 60, 0, 1, 4, 0, 0, 0, 0])  # PadN of 4: 8 bytes each
    return dst_mac + src_mac + struct.pack('!H', 0x86dd) + ip6hdr(s, d, 60, exts + icmp)


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
        if '%' in dst:  # a link-local address: its scope as an interface index
            host, dev = dst.split('%')
            s.connect((host, dport, 0, socket.if_nametoindex(dev)))
        else:
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
    elif a[0] == 'icmp':
        dst, typ, code, ident, tag, count = a[1], int(a[2]), int(a[3]), int(a[4]), a[5].encode(), int(a[6])
        s, v6 = icmp_sock(dst)
        for i in range(count):
            s.sendto(icmp_msg(v6, typ, code, struct.pack('!HH', ident, i) + tag), (dst, 0))
            time.sleep(0.01)
    elif a[0] == 'icmperr':
        dst, isrc, idst, sport, dport, count = a[1], a[2], a[3], int(a[4]), int(a[5]), int(a[6])
        s, v6 = icmp_sock(dst)
        if v6:
            si, di = socket.inet_pton(socket.AF_INET6, isrc), socket.inet_pton(socket.AF_INET6, idst)
            udp = struct.pack('!HHHH', sport, dport, 13, 0) + b'hello'
            inner = struct.pack('!IHBB', 6 << 28, 13, 17, 64) + si + di + udp
            msg = icmp_msg(True, 1, 4, b'\0\0\0\0' + inner)
        else:
            msg = icmp_msg(False, 3, 3, b'\0\0\0\0' + udp_ip(isrc, idst, sport, dport, b'hello'))
        for _ in range(count):
            s.sendto(msg, (dst, 0))
            time.sleep(0.02)
    elif a[0] == 'icmpwatch':
        seconds, tag = float(a[1]), a[2].encode()
        socks = [socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP), socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)]
        for s in socks:
            s.setblocking(False)
        got, end = 0, time.time() + seconds
        print('ready', flush=True)
        while time.time() < end:
            import select
            r, _, _ = select.select(socks, [], [], 0.1)
            for s in r:
                if tag in s.recv(4096):
                    got += 1
        print(got)
    elif a[0] == 'udpwait':
        dst, dport, sport, seconds = a[1], int(a[2]), int(a[3]), float(a[4])
        fam = socket.AF_INET6 if ':' in dst else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('::' if fam == socket.AF_INET6 else '0.0.0.0', sport))
        s.connect((dst, dport))
        s.settimeout(0.1)
        s.send(b'hello')
        got, end, out, last = 0, time.time() + seconds, None, time.time()
        print('ready', flush=True)
        while time.time() < end and out is None:
            try:
                if time.time() - last > 0.25:
                    s.send(b'hello')
                    last = time.time()
                s.recv(100)
                got += 1
            except socket.timeout:
                pass
            except ConnectionRefusedError:
                out = 'refused'
        print(out or 'ok %d' % got)
    elif a[0] == 'frag':
        dst, dport, sport, size = a[1], int(a[2]), int(a[3]), int(a[4])
        fam = socket.AF_INET6 if ':' in dst else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind(('::' if fam == socket.AF_INET6 else '0.0.0.0', sport))
        s.settimeout(1.5)
        s.sendto(b'x' * size, (dst, dport))
        try:
            print(len(s.recv(65535)))
        except socket.timeout:
            print(0)
    elif a[0] == 'bigecho':
        port, size, seconds = int(a[1]), int(a[2]), float(a[3])
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(('::', port))
        s.settimeout(0.1)
        end = time.time() + seconds
        print('ready', flush=True)
        while time.time() < end:
            try:
                _, peer = s.recvfrom(65535)
            except socket.timeout:
                continue
            s.sendto(b'y' * size, peer)
    elif a[0] == 'dstopts':
        dst, dport, sport = a[1], int(a[2]), int(a[3])
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind(('::', sport))
        # Destination options: next header (filled by the kernel), length 0, PadN of 4 bytes.
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_DSTOPTS, bytes([0, 0, 1, 4, 0, 0, 0, 0]))
        s.settimeout(1.0)
        s.sendto(b'hello', (dst, dport))
        try:
            s.recv(100)
            print(1)
        except socket.timeout:
            print(0)
    elif a[0] == 'vxlan':
        node, port, vni, dmac, isrc, idst, dport, count = a[1], int(a[2]), int(a[3]), mac(a[4]), a[5], a[6], int(a[7]), int(a[8])
        inner = dmac + bytes([2, 0, 0, 0, 0, 9]) + struct.pack('!H', 0x0800) + udp_ip(isrc, idst, 4242, dport, b'forged')
        pkt = struct.pack('!II', 0x08000000, vni << 8) + inner
        fam = socket.AF_INET6 if ':' in node else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        for _ in range(count):
            s.sendto(pkt, (node, port))
            time.sleep(0.02)
    elif a[0] == 'ipip':
        dst, isrc, idst, dport, count = a[1], a[2], a[3], int(a[4]), int(a[5])
        proto = int(a[6]) if len(a) > 6 else 4
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
        inner = udp_ip(isrc, idst, 4242, dport, b'forged')
        if proto == 47:
            inner = struct.pack('!HH', 0, 0x0800) + inner
        for _ in range(count):
            s.sendto(inner, (dst, 0))
            time.sleep(0.02)
    elif a[0] == 'lonefrag':
        dst, count = a[1], int(a[2])
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.connect((dst, 9))
        src = probe.getsockname()[0]
        payload = b'z' * 64
        # A last fragment at offset 1480 (no MF): no transport header in it.
        hdr = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), 0x4242, 185, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        for _ in range(count):
            s.sendto(hdr + payload, (dst, 0))
            time.sleep(0.01)
    elif a[0] == 'sniffproto':
        iface, proto, seconds = a[1], int(a[2]), float(a[3])
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
        s.bind((iface, 0))
        s.settimeout(0.1)
        got, end = 0, time.time() + seconds
        print('ready', flush=True)
        while time.time() < end:
            try:
                f = s.recv(65535)
            except socket.timeout:
                continue
            if len(f) > 23 and f[23] == proto:
                got += 1
        print(got)
    elif a[0] == 'sniff':
        iface, tag, seconds = a[1], a[2].encode(), float(a[3])
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        s.bind((iface, 0))
        s.settimeout(0.1)
        got, end = 0, time.time() + seconds
        print('ready', flush=True)
        while time.time() < end:
            try:
                f, addr = s.recvfrom(65535)
            except socket.timeout:
                continue
            if addr[2] != socket.PACKET_OUTGOING and tag in f:
                got += 1
        print(got)
    elif a[0] == 'rawframe':
        iface, dst_mac, src, dst, kind, tag, count = a[1], a[2], a[3], a[4], a[5], a[6].encode(), int(a[7])
        raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        raw.bind((iface, 0))
        f = raw_frame(mac(dst_mac), raw.getsockname()[4], src, dst, kind, tag)
        for _ in range(count):
            raw.send(f)
            time.sleep(0.02)
    elif a[0] == 'bigerr':
        iface, dst_mac, src, dst, isrc, idst, sport, dport, count = a[1], mac(a[2]), a[3], a[4], a[5], a[6], int(a[7]), int(a[8]), int(a[9])
        quoted = udp_ip(isrc, idst, sport, dport, b'hello')
        icmp = struct.pack('!BBHI', 3, 3, 0, 0) + quoted + b'\0' * (5000 - 14 - 20 - 8 - len(quoted))
        icmp = icmp[:2] + struct.pack('!H', csum(icmp)) + icmp[4:]
        hdr = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(icmp), 9, 0, 64, 1, 0, socket.inet_aton(src), socket.inet_aton(dst))
        ip = hdr[:10] + struct.pack('!H', csum(hdr)) + hdr[12:] + icmp
        raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        raw.setsockopt(263, 15, 1)  # SOL_PACKET, PACKET_VNET_HDR
        raw.bind((iface, 0))
        eth_frame = dst_mac + raw.getsockname()[4] + struct.pack('!H', 0x0800) + ip
        vnet = struct.pack('<BBHHHH', 0, 0, 34, 0, 0, 0)  # no GSO; hdr_len 34: Ethernet + IPv4 linear
        for _ in range(count):
            raw.send(vnet + eth_frame)
            time.sleep(0.02)
    elif a[0] == 'spray':
        dst, first, count = a[1], int(a[2]), int(a[3])
        s = socket.socket(socket.AF_INET6 if ':' in dst else socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(count):
            try:
                s.sendto(b'spray', (dst, first + i))
            except OSError:
                pass


main(sys.argv[1:])
