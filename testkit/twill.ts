// Running the real executable as a runtime would, and making throw-away namespaces.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout: this module runs as build/testkit/twill.js. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** The executable under test (TWILL_BIN, relative to the checkout or absolute; default dist/twill). */
export const TWILL = resolve(ROOT, process.env.TWILL_BIN ?? 'dist/twill');
export const CNI_BIN_DIR = process.env.CNI_BIN_DIR ?? '/usr/lib/cni';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
  json: Record<string, any>;
}

export interface Env {
  CNI_COMMAND: string;
  CNI_CONTAINERID?: string;
  CNI_NETNS?: string;
  CNI_IFNAME?: string;
  CNI_ARGS?: string;
  CNI_PATH?: string;
}

function parse(stdout: string): Record<string, any> {
  try {
    return stdout.trim() ? JSON.parse(stdout) : {};
  } catch {
    return { unparsable: stdout };
  }
}

export function runPlugin(bin: string, env: Env, stdin: string | object): Run {
  const input = typeof stdin === 'string' ? stdin : JSON.stringify(stdin);
  const r = spawnSync(bin, [], { input, env: { PATH: process.env.PATH, CNI_PATH: CNI_BIN_DIR, ...env }, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, json: parse(r.stdout) };
}

export const twill = (env: Env, stdin: string | object): Run => runPlugin(TWILL, env, stdin);

/** The runtime a twill executable was built on (`twill version -o json`: "bun 1.4.5", "node v24.…"). */
export function runtimeOf(bin = TWILL): string {
  try {
    return (JSON.parse(spawnSync(bin, ['version', '-o', 'json'], { encoding: 'utf8' }).stdout) as { runtime: string }).runtime;
  } catch {
    return 'unknown runtime';
  }
}

export function runPluginAsync(bin: string, env: Env, stdin: string | object): Promise<Run> {
  const input = typeof stdin === 'string' ? stdin : JSON.stringify(stdin);
  return new Promise((res) => {
    const p = spawn(bin, [], { env: { PATH: process.env.PATH, CNI_PATH: CNI_BIN_DIR, ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => res({ code: code ?? -1, stdout, stderr, json: parse(stdout) }));
    p.stdin.end(input);
  });
}

export function sh(cmd: string, args: string[], opts: { allowFail?: boolean; input?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000, input: opts.input ?? '' });
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
  return r.stdout;
}

let counter = 0;
const created: string[] = [];

/** A network namespace that is deleted by cleanupNetns() (and by the test's after hook). */
export function makeNetns(): string {
  const name = `twt${process.pid}n${counter++}`;
  sh('ip', ['netns', 'add', name]);
  created.push(name);
  return name;
}

export const netnsPath = (name: string): string => `/run/netns/${name}`;

export function deleteNetns(name: string): void {
  sh('ip', ['netns', 'del', name], { allowFail: true });
  const i = created.indexOf(name);
  if (i >= 0) created.splice(i, 1);
}

export function cleanupNetns(): void {
  for (const n of [...created]) deleteNetns(n);
}

export const inNs = (ns: string, cmd: string[], allowFail = false): string => sh('ip', ['netns', 'exec', ns, ...cmd], { allowFail });

export function pingOk(ns: string | undefined, addr: string): boolean {
  const cmd = ['ping', '-c', '1', '-W', '2', addr];
  const r = ns ? spawnSync('ip', ['netns', 'exec', ns, ...cmd]) : spawnSync(cmd[0]!, cmd.slice(1));
  return r.status === 0;
}

export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `twill-${tag}-`));
}

export const removeDir = (d: string): void => rmSync(d, { recursive: true, force: true });

/**
 * Host links whose names start with prefix, once pending deletions have settled: DEL hands
 * the kernel's slow veth teardown to a background process, so absence is polled (≤ 3 s).
 */
export function hostLinksSettled(prefix: string): string[] {
  const until = Date.now() + 3000;
  let links = hostLinks(prefix);
  while (links.length > 0 && Date.now() < until) {
    spawnSync('sleep', ['0.05']);
    links = hostLinks(prefix);
  }
  return links;
}

/** Host links whose names start with prefix. */
export function hostLinks(prefix: string): string[] {
  const links = JSON.parse(sh('ip', ['-j', 'link', 'show'])) as { ifname: string }[];
  return links.map((l) => l.ifname).filter((n) => n.startsWith(prefix));
}

/** A snapshot of what a rejected call must not change. */
export function hostSnapshot(dirs: string[]): string {
  const links = (JSON.parse(sh('ip', ['-j', 'link', 'show'])) as { ifname: string; flags: string[] }[]).map((l) => `${l.ifname}:${l.flags.join(',')}`);
  const r4 = sh('ip', ['-4', 'route', 'show', 'table', 'all']);
  const r6 = sh('ip', ['-6', 'route', 'show', 'table', 'all']).split('\n').filter((l) => !l.includes('expires')).join('\n');
  const files = dirs.map((d) => sh('find', [d], { allowFail: true }));
  return JSON.stringify({ links, r4, r6, files });
}
