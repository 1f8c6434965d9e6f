// A minimal conflist executor that drives a plugin chain the way libcni does (used by the
// demo, the benchmarks and the chaining tests): per plugin it injects name, cniVersion,
// runtimeConfig (capabilities ∩ capability args) and prevResult; DEL runs in reverse; the
// final ADD result is cached for CHECK and DEL.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';

export interface ConfList {
  cniVersion: string;
  name: string;
  plugins: Record<string, unknown>[];
}

export interface ChainCall {
  verb: 'ADD' | 'DEL' | 'CHECK';
  conflist: ConfList;
  containerId: string;
  netns: string;
  ifName: string;
  cniPath: string;
  capArgs: Record<string, unknown>;
  cacheFile: string;
  /** More CNI_ARGS (K8S_POD_NAMESPACE=…;K8S_POD_NAME=…). */
  args?: string;
}

function pluginConf(list: ConfList, plugin: Record<string, unknown>, capArgs: Record<string, unknown>, prev: unknown): Record<string, unknown> {
  const conf: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: list.cniVersion };
  const caps = (plugin.capabilities ?? {}) as Record<string, boolean>;
  const rc: Record<string, unknown> = {};
  for (const [k, on] of Object.entries(caps)) if (on && k in capArgs) rc[k] = capArgs[k];
  if (Object.keys(rc).length > 0) conf.runtimeConfig = rc;
  if (prev !== undefined) conf.prevResult = prev;
  return conf;
}

function exec(c: ChainCall, type: string, verb: string, conf: Record<string, unknown>): Record<string, unknown> {
  const r = spawnSync(`${c.cniPath.split(':')[0]}/${type}`, [], {
    input: JSON.stringify(conf),
    encoding: 'utf8',
    env: { ...process.env, CNI_COMMAND: verb, CNI_CONTAINERID: c.containerId, CNI_NETNS: c.netns, CNI_IFNAME: c.ifName, CNI_PATH: c.cniPath, CNI_ARGS: `IgnoreUnknown=1${c.args ? `;${c.args}` : ''}` },
  });
  if (r.status !== 0) throw new Error(`${type} ${verb} failed (exit ${r.status}): ${r.stdout.trim() || r.stderr.trim()}`);
  return r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : {};
}

export function runChain(c: ChainCall): Record<string, unknown> | undefined {
  const cached = (): unknown => {
    try {
      return JSON.parse(readFileSync(c.cacheFile, 'utf8'));
    } catch {
      return undefined;
    }
  };
  if (c.verb === 'ADD') {
    let prev: unknown;
    for (const p of c.conflist.plugins) prev = exec(c, String(p.type), 'ADD', pluginConf(c.conflist, p, c.capArgs, prev));
    writeFileSync(c.cacheFile, JSON.stringify(prev));
    return prev as Record<string, unknown>;
  }
  const prev = cached();
  const plugins = c.verb === 'DEL' ? [...c.conflist.plugins].reverse() : c.conflist.plugins;
  for (const p of plugins) exec(c, String(p.type), c.verb, pluginConf(c.conflist, p, c.capArgs, prev));
  if (c.verb === 'DEL') rmSync(c.cacheFile, { force: true });
  return undefined;
}

// CLI: chain.js ADD|CHECK|DEL <conflist> <netns> <containerID> [capArgs-json]
if (process.argv[1]?.endsWith('chain.js')) {
  const [verb, file, netns, id, caps] = process.argv.slice(2);
  if (!verb || !file || !netns || !id) {
    process.stderr.write('usage: chain.js ADD|CHECK|DEL <conflist> <netns> <containerID> [capArgs-json]\n');
    process.exit(2);
  }
  try {
    const out = runChain({
      verb: verb as ChainCall['verb'],
      conflist: JSON.parse(readFileSync(file, 'utf8')) as ConfList,
      containerId: id,
      netns,
      ifName: process.env.CNI_IFNAME ?? 'eth0',
      cniPath: process.env.CNI_PATH ?? '/opt/cni/bin',
      capArgs: caps ? (JSON.parse(caps) as Record<string, unknown>) : {},
      cacheFile: `${process.env.CHAIN_CACHE_DIR ?? '/tmp'}/chain-${id}.json`,
    });
    if (out) process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(1);
  }
}
