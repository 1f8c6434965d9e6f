// One face for both IPAM flavours: the built-in host-local or a delegated plugin.
import { Code, CniError } from '../cni/errors.js';
import type { Result } from '../cni/result.js';
import type { Attachment, NetConf } from '../config/types.js';
import { delegate } from './delegate.js';
import { hostLocalAdd, hostLocalCount, hostLocalDel, hostLocalGc, hostLocalHeld, hostLocalUsage, type IpamOutcome, type PoolUsage } from './hostlocal.js';
import { network, offset, parseAddr, parseCidr } from '../net/ip.js';

export interface IpamCall {
  conf: NetConf;
  containerId: string;
  ifName: string;
  cniArgsIp: string | undefined;
  /** The Kubernetes pod (CNI_ARGS K8S_POD_NAMESPACE / K8S_POD_NAME), when the runtime names it. */
  pod?: { namespace: string; name: string } | undefined;
  /** For delegation: the exact stdin and environment we were given. */
  stdin: string;
  env: NodeJS.ProcessEnv;
  path: string[];
}

const builtIn = (conf: NetConf): boolean => conf.ipam?.type === 'host-local';

function ipamType(conf: NetConf): string {
  if (!conf.ipam) throw new CniError(Code.InvalidConfig, 'invalid network config: ipam is required');
  // Delegating to ourselves would exec twill with its own config, again and again.
  if (conf.ipam.type === conf.type || conf.ipam.type === 'twill') {
    throw new CniError(Code.InvalidConfig, `invalid network config: ipam.type "${conf.ipam.type}" is this plugin itself`, 'use "host-local" or another IPAM plugin');
  }
  return conf.ipam.type;
}

function fromDelegated(r: Result): IpamOutcome {
  return {
    ips: r.ips.map((ip) => {
      const cidr = parseCidr(ip.address);
      if (!cidr) throw new CniError(Code.Internal, `ipam plugin returned a bad address "${ip.address}"`);
      const gw = ip.gateway ? parseAddr(ip.gateway) : undefined;
      return { cidr, gateway: gw ?? offset(network(cidr).addr, 1n) };
    }),
    routes: r.routes,
    ...(r.dns ? { dns: r.dns } : {}),
  };
}

export function ipamAdd(c: IpamCall): IpamOutcome {
  if (builtIn(c.conf)) return hostLocalAdd(c.conf, c.containerId, c.ifName, c.cniArgsIp);
  const r = delegate('ADD', ipamType(c.conf), c.stdin, c.env, c.path);
  if (!r || r.ips.length === 0) throw new CniError(Code.Internal, `ipam plugin ${ipamType(c.conf)} returned no addresses`);
  return fromDelegated(r);
}

export function ipamDel(c: IpamCall): string[] {
  if (builtIn(c.conf)) return hostLocalDel(c.conf, c.containerId, c.ifName);
  delegate('DEL', ipamType(c.conf), c.stdin, c.env, c.path);
  return [];
}

/** Addresses the IPAM holds for the attachment; undefined when a delegated plugin answered CHECK itself. */
export function ipamCheck(c: IpamCall): string[] | undefined {
  if (builtIn(c.conf)) return hostLocalHeld(c.conf, c.containerId, c.ifName);
  delegate('CHECK', ipamType(c.conf), c.stdin, c.env, c.path);
  return undefined;
}

export function ipamGc(c: IpamCall, valid: readonly Attachment[]): { ip: string; id: string; ifname: string }[] {
  if (builtIn(c.conf)) return hostLocalGc(c.conf, valid);
  delegate('GC', ipamType(c.conf), c.stdin, c.env, c.path);
  return [];
}

/** Pool usage for the built-in IPAM; a delegated plugin is asked for STATUS instead. */
export function ipamStatus(c: IpamCall): PoolUsage[] | undefined {
  if (builtIn(c.conf)) return hostLocalUsage(c.conf);
  delegate('STATUS', ipamType(c.conf), c.stdin, c.env, c.path);
  return undefined;
}

/** Reservations the built-in IPAM still holds for the network; undefined for a delegated plugin. */
export function ipamHeldCount(c: IpamCall): number | undefined {
  return builtIn(c.conf) ? hostLocalCount(c.conf) : undefined;
}
