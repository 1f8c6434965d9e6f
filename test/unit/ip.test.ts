import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { contains, formatAddr, lastAddr, network, parseAddr, parseCidr } from '../../lib/net/ip.js';

const roundTrip = (s: string): string => formatAddr(parseAddr(s)!);

describe('ip', () => {
  it('formats IPv6 as Go net.IP.String() does (host-local file names)', () => {
    assert.equal(roundTrip('fd00:0:0:0:0:0:0:1'), 'fd00::1');
    assert.equal(roundTrip('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
    assert.equal(roundTrip('2001:0db8:0000:0001:0000:0000:0000:0001'), '2001:db8:0:1::1');
    assert.equal(roundTrip('fd00:1:0:1:1:1:1:1'), 'fd00:1:0:1:1:1:1:1');
    assert.equal(roundTrip('::'), '::');
    assert.equal(roundTrip('::1'), '::1');
    assert.equal(roundTrip('FD00::A'), 'fd00::a');
    assert.equal(roundTrip('::ffff:0:10.1.2.3'), '::ffff:0:a01:203');
  });

  it('prints IPv4-mapped IPv6 in mixed notation (RFC 5952, Go netip), distinct from the IPv4 address', () => {
    assert.equal(roundTrip('::ffff:10.1.2.3'), '::ffff:10.1.2.3');
    assert.equal(roundTrip('0:0:0:0:0:ffff:a01:203'), '::ffff:10.1.2.3');
    assert.equal(roundTrip('::fffe:a01:203'), '::fffe:a01:203');
  });

  it('parses and rejects IPv4 strictly', () => {
    assert.equal(roundTrip('10.0.0.1'), '10.0.0.1');
    for (const bad of ['10.0.0', '10.0.0.256', '010.0.0.1', '1.2.3.4.5', '', 'a.b.c.d', '1:2:3:4:5:6:7:8:9', ':::', '1::2::3']) {
      assert.equal(parseAddr(bad), undefined, bad);
    }
  });

  it('does CIDR arithmetic', () => {
    const c = parseCidr('10.1.2.77/24')!;
    assert.equal(formatAddr(network(c).addr), '10.1.2.0');
    assert.equal(formatAddr(lastAddr(c)), '10.1.2.255');
    assert.ok(contains(c, parseAddr('10.1.2.1')!));
    assert.ok(!contains(c, parseAddr('10.1.3.1')!));
    assert.ok(!contains(c, parseAddr('fd00::1')!));
    assert.equal(parseCidr('10.0.0.0/33'), undefined);
    assert.equal(formatAddr(lastAddr(parseCidr('fd00::/64')!)), 'fd00::ffff:ffff:ffff:ffff');
  });
});
