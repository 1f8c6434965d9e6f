// Flow visibility against real traffic: every flow the programs judge is in the kernel's
// flow history with its verdict (no reader running), `twill observe` names it as Hubble
// would, --follow streams it from the ring buffer, and `twill metrics` counts it.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { AGENT, NetpolCluster, type Pod } from '../helpers/netpol.js';
import { endpointsJson } from '../helpers/traffic.js';
import { forge, send, sleep } from '../helpers/pkt.js';
import { cleanupNetns, sh, TWILL } from '../helpers/twill.js';
import { openNetwork } from '../../lib/bpf/loader.js';
import { lostEvents, readerDeadline, setReaderDeadline } from '../../lib/bpf/flows.js';
import { RingReader } from '../../lib/bpf/ringbuf.js';
import { monotonicNs } from '../../lib/sys/libc.js';

after(cleanupNetns);

const pol = (ns: string, name: string, spec: object): object => ({ metadata: { namespace: ns, name }, spec });
/** y's pods take ingress from y only. */
const DENY_FROM_X = pol('y', 'deny-from-x', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] });

interface JsonFlow {
  flow: {
    time: string; verdict: string; drop_reason_desc?: string; IP: { source: string; destination: string; ipVersion: string };
    l4?: { TCP?: { source_port: number; destination_port: number; flags: Record<string, boolean> }; UDP?: { destination_port: number }; ICMPv4?: { type: number }; ICMPv6?: { type: number } };
    source: { namespace?: string; pod_name?: string; labels: string[] }; destination: { namespace?: string; pod_name?: string; labels: string[] };
    traffic_direction: string; trace_observation_point?: string; is_reply?: boolean; Summary: string;
    ingress_denied_by?: { name: string; namespace: string }[]; ingress_allowed_by?: { name: string; namespace: string }[];
    twill: { event: string; packets: number; sent_by?: string };
  };
  node_name: string;
  time: string;
}

describe('twill observe and twill metrics', () => {
  let c: NetpolCluster;
  const pod = (k: string): Pod => c.pods.get(k)!;
  const v4 = (k: string): string => pod(k).ips.find((a) => !a.includes(':'))!;
  const v6 = (k: string): string => pod(k).ips.find((a) => a.includes(':'))!;
  const observe = (...args: string[]) => spawnSync(TWILL, ['observe', '--conf-dir', c.confDir, ...args], { encoding: 'utf8', timeout: 30_000 });
  const flows = (...args: string[]): JsonFlow[] => {
    const r = observe('-o', 'json', ...args);
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as JsonFlow);
  };
  /** Connects (TCP, UDP) from a pod; true when answered. */
  const probe = (from: string, addr: string, port: number, proto: 'TCP' | 'UDP'): boolean => {
    const r = spawnSync('ip', ['netns', 'exec', pod(from).netns, 'python3', AGENT, 'probe', '0.5'], { input: JSON.stringify([[addr, port, proto]]), encoding: 'utf8' });
    return (JSON.parse(r.stdout || '[false]') as boolean[])[0] === true;
  };
  const ping = (from: string, addr: string): boolean => spawnSync('ip', ['netns', 'exec', pod(from).netns, 'ping', '-c', '1', '-W', '1', addr]).status === 0;
  const withMaps = <T>(fn: (m: ReadonlyMap<string, number>) => T): T => {
    const net = openNetwork(c.bpffs.root, c.conf.name)!;
    try {
      return fn(net.maps);
    } finally {
      net.close();
    }
  };

  before(() => {
    c = new NetpolCluster({ namespaces: ['x', 'y'], pods: ['a', 'b'], ports: [80], protocols: ['TCP', 'UDP'] }, 'dual').setup();
    c.sync([DENY_FROM_X]);
  });
  after(() => c.teardown());

  it('records every flow with its verdict while nobody reads, TCP, UDP and ICMP over IPv4 and IPv6, fast path and stack', async () => {
    withMaps((m) => assert.equal(readerDeadline(m.get('observer')!), 0n, 'no reader is registered'));
    for (const [fam, ip] of [[4, v4], [6, v6]] as const) {
      assert.ok(probe('x/a', ip('x/b'), 80, 'TCP'), `x/a -> x/b TCP v${fam}`);
      assert.ok(probe('x/a', ip('x/b'), 80, 'UDP'), `x/a -> x/b UDP v${fam}`);
      assert.ok(ping('x/a', ip('x/b')), `ping v${fam}`);
      assert.ok(probe('y/b', ip('y/a'), 80, 'TCP'), `y/b -> y/a TCP v${fam}`);
      assert.equal(probe('x/a', ip('y/a'), 80, 'TCP'), false, `x/a -> y/a is denied v${fam}`);
    }
    // A long-lived connection takes the fast path once conntrack has seen both directions.
    const stream = spawnSync('ip', ['netns', 'exec', pod('x/a').netns, 'python3', AGENT, 'stream', v4('x/b'), '80', '1'], { encoding: 'utf8' });
    assert.equal(stream.status, 0, stream.stderr);
    const all = flows('--last', '1000');
    const find = (src: string, dst: string, proto: string, dport?: number) =>
      all.find((f) => f.flow.IP.source === src && f.flow.IP.destination === dst && (proto in (f.flow.l4 ?? {})) && (dport === undefined || (f.flow.l4 as Record<string, { destination_port?: number }>)[proto]!.destination_port === dport));
    for (const ip of [v4, v6]) {
      const tcp = find(ip('x/a'), ip('x/b'), 'TCP', 80);
      assert.ok(tcp, `TCP x/a -> x/b ${ip('x/a')} recorded: ${all.map((f) => `${f.flow.IP.source}->${f.flow.IP.destination} ${f.flow.Summary}`).join('; ')}`);
      assert.equal(tcp.flow.verdict, 'FORWARDED');
      assert.deepEqual([tcp.flow.source.namespace, tcp.flow.source.pod_name, tcp.flow.destination.namespace, tcp.flow.destination.pod_name], ['x', 'a', 'x', 'b']);
      assert.equal(tcp.flow.traffic_direction, 'EGRESS');
      assert.ok(tcp.flow.l4!.TCP!.flags.SYN, 'the flags seen include SYN');
      assert.equal(tcp.flow.is_reply, false);
      const reply = find(ip('x/b'), ip('x/a'), 'TCP');
      assert.ok(reply, 'the reply direction is its own flow');
      assert.equal(reply.flow.is_reply, true);
      assert.equal(find(ip('x/a'), ip('x/b'), 'UDP', 80)?.flow.verdict, 'FORWARDED');
      const icmp = all.find((f) => f.flow.IP.source === ip('x/a') && f.flow.IP.destination === ip('x/b') && f.flow.Summary.includes('EchoRequest'));
      assert.ok(icmp, 'the echo request is recorded');
      const allowed = find(ip('y/b'), ip('y/a'), 'TCP', 80);
      assert.equal(allowed?.flow.verdict, 'FORWARDED');
      assert.deepEqual(allowed?.flow.ingress_allowed_by?.map((p) => `${p.namespace}/${p.name}`), ['y/deny-from-x'], 'names the policy that allowed it');
      const denied = find(ip('x/a'), ip('y/a'), 'TCP', 80);
      assert.equal(denied?.flow.verdict, 'DROPPED');
      assert.equal(denied?.flow.drop_reason_desc, 'POLICY_DENIED');
      assert.equal(denied?.flow.traffic_direction, 'INGRESS');
      assert.deepEqual(denied?.flow.ingress_denied_by?.map((p) => `${p.namespace}/${p.name}`), ['y/deny-from-x']);
      assert.ok(denied!.flow.twill.packets >= 1);
    }
    const streamed = all.filter((f) => f.flow.IP.source === v4('x/a') && f.flow.IP.destination === v4('x/b') && f.flow.l4?.TCP && f.flow.trace_observation_point === 'TO_ENDPOINT');
    assert.ok(streamed.length >= 1, 'a connection on the fast path shows as delivered to the endpoint');
    const redirected = endpointsJson(c.bpffs.root).filter((e) => pod('x/a').ips.includes(e.addr)).reduce((s, e) => s + (e.counters?.redirectPackets ?? 0), 0);
    assert.ok(redirected > 0, 'the fast path was taken');
  });

  it('prints one aligned, uncoloured line per flow when stdout is not a terminal, Hubble-style', () => {
    const r = observe('--verdict', 'DROPPED', '--from-pod', 'x/a', '--to-pod', 'y/a');
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^TIME\s+SOURCE\s+DESTINATION\s+PROTO\s+VERDICT\s+TYPE\/REASON\s+SUMMARY$/);
    assert.ok(lines.length >= 3, r.stdout);
    for (const l of lines.slice(1)) assert.match(l, /^\w{3} [ \d]\d \d\d:\d\d:\d\d\.\d{3}\s+x\/a:\d+\s+->\s+y\/a:80\s+TCP\s+DROPPED\s+policy y\/deny-from-x\s+TCP Flags: SYN/);
    assert.equal(new Set(lines.slice(1).map((l) => l.indexOf('->'))).size, 1, 'columns align');
    assert.equal(lines[0]!.indexOf('DESTINATION'), lines[1]!.indexOf('y/a:80'), 'under their heads');
    assert.ok(!r.stdout.includes('\x1b['), 'no colour codes in a pipe');
  });

  it('finds a drop after the fact with --since, with no reader running at the time, and filters as hubble observe does', async () => {
    assert.equal(probe('x/b', v4('y/b'), 80, 'UDP'), false);
    await sleep(1100);
    const recent = flows('--since', '1m', '--verdict', 'dropped', '--protocol', 'udp');
    assert.ok(recent.some((f) => f.flow.source.pod_name === 'b' && f.flow.destination.pod_name === 'b' && f.flow.destination.namespace === 'y'), JSON.stringify(recent.map((f) => f.flow.IP)));
    assert.deepEqual(flows('--since', '1s', '--verdict', 'DROPPED', '--protocol', 'udp', '--ip', v4('x/b')), [], 'nothing since a second ago');
    for (const [args, ok] of [
      [['--pod', 'y/b'], (f: JsonFlow) => [f.flow.source, f.flow.destination].some((p) => p.namespace === 'y' && p.pod_name === 'b')],
      [['--namespace', 'x'], (f: JsonFlow) => f.flow.source.namespace === 'x' || f.flow.destination.namespace === 'x'],
      [['--port', '80', '--protocol', 'tcp'], (f: JsonFlow) => f.flow.l4?.TCP !== undefined && [f.flow.l4.TCP.source_port, f.flow.l4.TCP.destination_port].includes(80)],
      [['--ip', v6('x/a')], (f: JsonFlow) => [f.flow.IP.source, f.flow.IP.destination].includes(v6('x/a'))],
      [['--protocol', 'icmpv6'], (f: JsonFlow) => f.flow.l4?.ICMPv6 !== undefined],
    ] as const) {
      const got = flows('--last', '1000', ...args);
      assert.ok(got.length > 0, `${args.join(' ')} matches something`);
      assert.ok(got.every(ok), `${args.join(' ')} lets only matching flows by`);
    }
    assert.equal(flows('--last', '3').length, 3, '--last N');
  });

  it('keeps the last verdict of a flow whose policy changed under it, with every packet counted', () => {
    const allowX = pol('y', 'allow-x', { podSelector: { matchLabels: { pod: 'b' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'x' } } }], ports: [{ port: 80, protocol: 'UDP' }] }] });
    c.sync([DENY_FROM_X, allowX]);
    assert.equal(send(pod('x/b').netns, 5555, v4('y/b'), 80, 3), 3);
    const before = flows('--ip', v4('y/b'), '--port', '5555').filter((f) => f.flow.IP.source === v4('x/b'));
    assert.equal(before[0]?.flow.verdict, 'FORWARDED');
    assert.deepEqual(before[0]?.flow.ingress_allowed_by?.map((p) => p.name), ['allow-x']);
    c.sync([DENY_FROM_X]);
    assert.equal(send(pod('x/b').netns, 5555, v4('y/b'), 80, 3), 0);
    const now = flows('--ip', v4('y/b'), '--port', '5555').filter((f) => f.flow.IP.source === v4('x/b'));
    assert.equal(now.length, 1);
    assert.equal(now[0]!.flow.verdict, 'DROPPED');
    assert.deepEqual(now[0]!.flow.ingress_denied_by?.map((p) => p.name), ['deny-from-x']);
    assert.equal(now[0]!.flow.twill.packets, 6);
  });

  it('counts a forged source against the pod that really sent it, and keeps no flow record of it', () => {
    const za = pod('x/a');
    const row = () => endpointsJson(c.bpffs.root).find((e) => za.ips.includes(e.addr)) as { hostIfName: string; counters?: { spoofedPackets?: number } };
    const mac = JSON.parse(sh('ip', ['-j', 'link', 'show', row().hostIfName]))[0].address as string;
    const spoofed = row().counters?.spoofedPackets ?? 0;
    forge(za.netns, mac, v4('y/b'), v4('x/b'), 4321, 80, 5);
    assert.ok((row().counters?.spoofedPackets ?? 0) >= spoofed + 5, 'counted on the veth of the pod that sent them');
    // A record per forged key would let a pod push every real flow out of the history.
    assert.deepEqual(flows('--ip', v4('y/b'), '--port', '4321'), []);
  });

  it('--follow streams new flows, drops and TCP ends from the ring buffer, and stops the events when it exits', async () => {
    const p = spawn(TWILL, ['observe', '--conf-dir', c.confDir, '-f', '-o', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const until = Date.now() + 5000;
    while (Date.now() < until && withMaps((m) => readerDeadline(m.get('observer')!)) === 0n) await sleep(20);
    assert.ok(withMaps((m) => readerDeadline(m.get('observer')!)) > monotonicNs(), 'the reader registered');
    const second = observe('-f');
    assert.equal(second.status, 1);
    assert.match(second.stderr, /another twill observe --follow is reading/);
    assert.ok(probe('y/b', v6('x/b'), 80, 'TCP'));
    assert.equal(probe('x/b', v6('y/a'), 80, 'TCP'), false);
    await sleep(600);
    p.kill('SIGINT');
    const code = await new Promise<number | null>((r) => p.on('close', r));
    assert.equal(code, 0);
    const evs = out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as JsonFlow);
    const of = (src: string, dst: string) => evs.filter((e) => e.flow.IP.source === src && e.flow.IP.destination === dst);
    const opened = of(v6('y/b'), v6('x/b'));
    assert.ok(opened.some((e) => e.flow.twill.event === 'new' && e.flow.verdict === 'FORWARDED'), JSON.stringify(evs.map((e) => [e.flow.IP, e.flow.twill.event])));
    assert.ok(opened.some((e) => e.flow.twill.event === 'end'), 'the TCP end (FIN) is an event');
    const drops = of(v6('x/b'), v6('y/a'));
    assert.ok(drops.length >= 1 && drops.every((e) => e.flow.verdict === 'DROPPED' && e.flow.twill.event === 'drop'));
    assert.ok(evs.length < 40, `events per flow, not per packet: ${evs.length}`);
    withMaps((m) => assert.equal(readerDeadline(m.get('observer')!), 0n, 'the reader said it stopped'));
  });

  it('counts lost events when the ring buffer is full, and writes none while nobody reads', () => {
    withMaps((m) => {
      const obs = m.get('observer')!;
      const ring = new RingReader(m.get('events')!);
      try {
        ring.drain(() => undefined);
        const lost0 = lostEvents(obs);
        const spray = (from: string, n: number, first = 20000): void => {
          const py = `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor p in range(${first},${first}+${n}): s.sendto(b'x',('${v4('x/b')}',p))`;
          const r = spawnSync('ip', ['netns', 'exec', pod(from).netns, 'python3', '-c', py]);
          assert.equal(r.status, 0);
        };
        // New flows over a veth's record budget are counted, neither recorded nor events.
        const suppressed = (): number => endpointsJson(c.bpffs.root).filter((e) => e.network === c.conf.name)
          .reduce((sum, e) => sum + ((e.counters as { recordsSuppressed?: number } | undefined)?.recordsSuppressed ?? 0), 0);
        spray('x/a', 500);
        assert.equal(ring.drain(() => undefined), 0, 'no reader: no event written');
        assert.equal(lostEvents(obs), lost0);
        // A reader that registered and does not read: 3,600 new flows from three pods (each
        // within about its budget) overflow 256 KiB of events.
        const s0 = suppressed();
        setReaderDeadline(obs, monotonicNs() + 30_000_000_000n);
        for (const from of ['x/a', 'y/a', 'y/b']) spray(from, 1200, 30000);
        setReaderDeadline(obs, 0n);
        const got = ring.drain(() => undefined);
        const lost = lostEvents(obs) - lost0;
        const over = BigInt(suppressed() - s0);
        assert.ok(got > 1000 && lost > 0, `read ${got}, lost ${lost}, over budget ${over}`);
        assert.ok(BigInt(got) + lost + over >= 3600n, `every new flow is an event, a lost one or over budget: ${got} + ${lost} + ${over}`);
      } finally {
        ring.close();
      }
    });
    // A pod flooding new flows ages the history out; it cannot stop forwarding.
    assert.ok(probe('y/b', v4('y/a'), 80, 'TCP'));
    const m = spawnSync(TWILL, ['metrics', '--conf-dir', c.confDir], { encoding: 'utf8' });
    assert.equal(m.status, 0, m.stderr);
    const lostLine = m.stdout.split('\n').find((l) => l.startsWith(`twill_events_lost_total{network="${c.conf.name}"}`));
    assert.ok(lostLine && Number(lostLine.split(' ')[1]) > 0, lostLine);
  });

  it('twill metrics prints Prometheus text per pod and reason, and --textfile writes it atomically for node_exporter', () => {
    const dir = mkdtempSync(`${tmpdir()}/twill-textfile-`);
    try {
      const r = spawnSync(TWILL, ['metrics', '--conf-dir', c.confDir, '--textfile', dir], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, '');
      assert.deepEqual(readdirSync(dir), ['twill.prom'], 'nothing but the file (no temporary left)');
      const text = readFileSync(`${dir}/twill.prom`, 'utf8');
      const sample = (name: string, labels: Record<string, string>): number | undefined => {
        for (const l of text.split('\n')) {
          if (!l.startsWith(`${name}{`)) continue;
          if (Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`))) return Number(l.slice(l.lastIndexOf(' ') + 1));
        }
        return undefined;
      };
      const net = c.conf.name as string;
      assert.equal(sample('twill_endpoints', { network: net }), 4);
      assert.ok(sample('twill_forwarded_packets_total', { network: net, namespace: 'x', pod: 'a', path: 'fast' })! > 0);
      assert.ok(sample('twill_forwarded_packets_total', { network: net, namespace: 'x', pod: 'a', path: 'stack' })! > 0);
      assert.ok(sample('twill_dropped_packets_total', { network: net, namespace: 'y', pod: 'a', reason: 'POLICY_DENIED', direction: 'ingress' })! > 0);
      assert.ok(sample('twill_dropped_packets_total', { network: net, namespace: 'x', pod: 'a', reason: 'INVALID_SOURCE_IP' })! >= 5);
      assert.equal(sample('twill_pool_addresses', { network: net, range_set: '0', state: 'used' }), 4);
      assert.ok(sample('twill_flows', { network: net })! > 10);
      assert.ok(Math.abs(sample('twill_policy_last_sync_timestamp_seconds', { network: net })! - Date.now() / 1000) < 3600);
      for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
        assert.match(m[1]!, /^twill_[a-z_]+$/);
        assert.equal(m[1]!.endsWith('_total'), m[2] === 'counter', `${m[1]}: counters and only counters end in _total`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.ok(!existsSync(`${c.confDir}/twill.prom`));
  });

  it('twill metrics --every N rewrites the file each round until SIGTERM (the DaemonSet container)', async () => {
    const dir = mkdtempSync(`${tmpdir()}/twill-textfile-`);
    try {
      const p = spawn(TWILL, ['metrics', '--conf-dir', c.confDir, '--textfile', dir, '--every', '1'], { stdio: 'ignore' });
      await sleep(300);
      const first = statSync(`${dir}/twill.prom`).mtimeMs;
      await sleep(1300);
      assert.ok(statSync(`${dir}/twill.prom`).mtimeMs > first, 'rewritten');
      p.kill('SIGTERM');
      assert.equal(await new Promise<number | null>((r) => p.on('close', r)), 0);
      assert.deepEqual(readdirSync(dir), ['twill.prom']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('colours verdicts on a terminal (and only there)', () => {
    const r = spawnSync('script', ['-qec', `${TWILL} observe --conf-dir ${c.confDir} --verdict DROPPED --last 2`, '/dev/null'], { encoding: 'utf8', env: { ...process.env, TERM: 'xterm', NO_COLOR: '' } });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(r.stdout.includes('\x1b[31mDROPPED'), JSON.stringify(r.stdout.slice(0, 300)));
    const plain = spawnSync('script', ['-qec', `${TWILL} observe --conf-dir ${c.confDir} --verdict DROPPED --last 2`, '/dev/null'], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
    assert.ok(!plain.stdout.includes('\x1b['), 'NO_COLOR is honoured');
  });
});
