import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { flowFilter } from '../../lib/observe/filter.js';
import { summaryOf, type HubbleFlow } from '../../lib/observe/flow.js';
import type { FlowKey } from '../../lib/bpf/layout.js';
import { parseAddr } from '../../lib/net/ip.js';
import { parseSince } from '../../lib/cli/observe.js';
import { exposition } from '../../lib/cli/metrics.js';
import { readableCount } from '../../lib/cli/status.js';

const flow = (over: Partial<HubbleFlow>): HubbleFlow => ({
  time: '2026-12-01T10:00:00.000Z', verdict: 'FORWARDED', IP: { source: '10.1.0.5', destination: 'fd00::7', ipVersion: 'IPv4' },
  l4: { TCP: { source_port: 40000, destination_port: 80, flags: {} } },
  source: { namespace: 'x', pod_name: 'web-1', labels: [] }, destination: { namespace: 'y', pod_name: 'db-0', labels: [] },
  Type: 'L3_L4', node_name: 'n', event_type: { type: 4 }, traffic_direction: 'EGRESS', Summary: '',
  twill: { network: 'n', event: 'flow', first_seen: '', last_seen: '', packets: 1, bytes: 1 }, ...over,
});

describe('observe filters (hubble observe\'s)', () => {
  const f = flow({});
  for (const [filter, want] of [
    [{ pod: 'x/web' }, true], [{ pod: 'web' }, true], [{ pod: 'db' }, true], [{ pod: 'z/web' }, false], [{ pod: 'y/web' }, false],
    [{ fromPod: 'x/web-1' }, true], [{ fromPod: 'y/db' }, false], [{ toPod: 'y/db' }, true], [{ toPod: 'x/web' }, false],
    [{ namespace: 'y' }, true], [{ namespace: 'z' }, false], [{ verdict: 'FORWARDED' }, true], [{ verdict: 'DROPPED' }, false],
    [{ protocol: 'tcp' }, true], [{ protocol: 'udp' }, false], [{ port: 80 }, true], [{ port: 40000 }, true], [{ port: 81 }, false],
    [{ ip: '10.1.0.5' }, true], [{ ip: '10.1.0.0/16' }, true], [{ ip: '10.2.0.0/16' }, false], [{ ip: 'fd00::/64' }, true], [{ ip: '10.1.0.6' }, false],
    [{ pod: 'x/web', verdict: 'DROPPED' }, false], [{ pod: 'x/web', port: 80, protocol: 'TCP' }, true],
  ] as const) it(`${JSON.stringify(filter)} → ${want}`, () => assert.equal(flowFilter(filter)(f), want));
  it('ICMP filters by icmp, icmpv4 and icmpv6', () => {
    const icmp = flow({ l4: { ICMPv4: { type: 8, code: 0 } } });
    assert.equal(flowFilter({ protocol: 'icmp' })(icmp), true);
    assert.equal(flowFilter({ protocol: 'icmpv6' })(icmp), false);
    assert.equal(flowFilter({ port: 8 })(icmp), false, 'an ICMP type is not a port');
  });
  it('a pod filter never matches an end that is no pod', () => assert.equal(flowFilter({ pod: '' })(flow({ source: { labels: ['reserved:world'] }, destination: { labels: ['reserved:host'] } })), false));
  it('rejects an --ip that is no address', () => assert.throws(() => flowFilter({ ip: 'nope' }), /not an address or CIDR/));
});

describe('--since', () => {
  const now = Date.parse('2026-12-01T10:00:00Z');
  it('takes durations and RFC 3339 times', () => {
    assert.equal(parseSince('10m', now), now - 600_000);
    assert.equal(parseSince('30s', now), now - 30_000);
    assert.equal(parseSince('1.5h', now), now - 5_400_000);
    assert.equal(parseSince('2026-12-01T09:00:00Z', now), now - 3_600_000);
  });
  for (const bad of ['10', 'm', '-5m', 'yesterday', '10 m']) it(`rejects "${bad}"`, () => assert.throws(() => parseSince(bad, now), /neither a duration/));
});

describe('Prometheus text exposition', () => {
  it('escapes label values and skips empty families', () => {
    const text = exposition(new Map([
      ['twill_x_total', { help: 'h', type: 'counter' as const, samples: [{ labels: { pod: 'a"b\\c\nd' }, value: 3n }] }],
      ['twill_empty', { help: 'h', type: 'gauge' as const, samples: [] }],
    ]));
    assert.equal(text, '# HELP twill_x_total h\n# TYPE twill_x_total counter\ntwill_x_total{pod="a\\"b\\\\c\\nd"} 3\n');
  });
});

describe('flow summaries name ICMP types as Hubble does', () => {
  const key = (proto: number, type: number): FlowKey => ({ proto, sport: type, dport: 0, src: parseAddr('::')!, dst: parseAddr('::')! });
  for (const [proto, type, want] of [
    [58, 135, 'ICMPv6 NeighborSolicitation'], [58, 136, 'ICMPv6 NeighborAdvertisement'], [58, 143, 'ICMPv6 MLDv2MulticastListenerReport'],
    [58, 128, 'ICMPv6 EchoRequest'], [1, 8, 'ICMPv4 EchoRequest'], [1, 3, 'ICMPv4 DestinationUnreachable'], [58, 200, 'ICMPv6 type 200'],
  ] as const) it(`${proto}/${type} → ${want}`, () => assert.equal(summaryOf({ key: key(proto, type), rec: { tcpFlags: 0 } }), want));
});

describe('status counts as people read them', () => {
  for (const [n, want] of [['0', '0'], ['253', '253'], ['65531', '65,531'], ['18446744073709551611', '~2^64'], ['4294967296', '2^32'], ['7516192768', '~2^33']] as const)
    it(`${n} → ${want}`, () => assert.equal(readableCount(n), want));
});
