// Hostile-pod traffic from the tests (test/helpers/pkt.py inside a namespace): raw frames
// with any source address, UDP datagrams from a fixed port, and a counting echo server.
import { spawn } from 'node:child_process';
import { inNs, ROOT } from './twill.js';

const PKT = `${ROOT}/test/helpers/pkt.py`;

/** Runs the echo server in ns for seconds; resolves to how many datagrams of each payload it got. */
export function echo(ns: string, port: number, seconds: number): Promise<Record<string, number>> {
  return new Promise((resolve) => {
    const p = spawn('ip', ['netns', 'exec', ns, 'python3', PKT, 'echo', String(port), String(seconds)]);
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('close', () => resolve(Object.fromEntries(out.trim().split(' ').filter((kv) => kv.includes('=')).map((kv) => [kv.split('=')[0]!, Number(kv.split('=')[1])]))));
  });
}

/** Sends count "hello" datagrams from sport; returns how many replies came from dst:dport. */
export const send = (ns: string, sport: number, dst: string, dport: number, count: number): number =>
  Number(inNs(ns, ['python3', PKT, 'send', String(sport), dst, String(dport), String(count)]).trim());

/** Sends count raw "forged" UDP frames out of the pod's eth0, with any source address. */
export function forge(ns: string, dstMac: string, src: string, dst: string, sport: number, dport: number, count: number): void {
  inNs(ns, ['python3', PKT, 'forge', 'eth0', dstMac, src, dst, String(sport), String(dport), String(count)]);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs one pkt.py command in ns; its last line of output. */
export const pkt = (ns: string, args: (string | number)[]): string => inNs(ns, ['python3', PKT, ...args.map(String)]).trim().split('\n').pop() ?? '';

/** Starts a pkt.py command that prints "ready" once listening; resolves then, to its last line's promise. */
export function pktBackground(ns: string, args: (string | number)[]): Promise<{ done: Promise<string> }> {
  return new Promise((ready) => {
    const p = spawn('ip', ['netns', 'exec', ns, 'python3', PKT, ...args.map(String)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    const done = new Promise<string>((res) => p.on('close', () => res(out.trim().split('\n').pop() ?? '')));
    p.stdout.on('data', (d: Buffer) => {
      const was = out.includes('ready');
      out += d.toString();
      if (!was && out.includes('ready')) ready({ done });
    });
    p.on('close', () => ready({ done }));
  });
}
