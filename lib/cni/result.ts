// CNI results: one internal shape (the 1.x one), parsed from and emitted to every version.
import { Code, CniError } from './errors.js';
import { hasIpVersionField } from './versions.js';

export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
}

export interface IpConfig {
  address: string;
  gateway?: string;
  interface?: number;
}

export interface Route {
  dst: string;
  gw?: string;
}

export interface Dns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface Result {
  interfaces: Interface[];
  ips: IpConfig[];
  routes: Route[];
  dns?: Dns;
}

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const str = (x: unknown): string | undefined => (typeof x === 'string' ? x : undefined);

function bad(what: string): CniError {
  return new CniError(Code.DecodeFailure, `prevResult: ${what}`);
}

/** Parses a result of any supported version (0.3.0 … 1.1.0) into the internal shape. */
export function parseResult(raw: unknown): Result {
  if (!isObj(raw)) throw bad('must be an object');
  if ('ip4' in raw || 'ip6' in raw) throw bad('0.1.0/0.2.0 results are not supported');
  const arr = (k: string): unknown[] => {
    const v = raw[k];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw bad(`${k} must be an array`);
    return v;
  };
  const interfaces = arr('interfaces').map((i, n): Interface => {
    if (!isObj(i) || !str(i.name)) throw bad(`interfaces[${n}].name is required`);
    const out: Interface = { name: i.name as string };
    if (str(i.mac)) out.mac = i.mac as string;
    if (typeof i.mtu === 'number') out.mtu = i.mtu;
    if (str(i.sandbox)) out.sandbox = i.sandbox as string;
    return out;
  });
  const ips = arr('ips').map((i, n): IpConfig => {
    if (!isObj(i) || !str(i.address)) throw bad(`ips[${n}].address is required`);
    const out: IpConfig = { address: i.address as string };
    if (str(i.gateway)) out.gateway = i.gateway as string;
    if (typeof i.interface === 'number' && Number.isInteger(i.interface)) out.interface = i.interface;
    return out;
  });
  const routes = arr('routes').map((r, n): Route => {
    if (!isObj(r) || !str(r.dst)) throw bad(`routes[${n}].dst is required`);
    return str(r.gw) ? { dst: r.dst as string, gw: r.gw as string } : { dst: r.dst as string };
  });
  const out: Result = { interfaces, ips, routes };
  if (isObj(raw.dns)) out.dns = raw.dns as Dns;
  return out;
}

/** The result as the caller's cniVersion wants it. */
export function formatResult(r: Result, cniVersion: string): Record<string, unknown> {
  const old = hasIpVersionField(cniVersion);
  const out: Record<string, unknown> = { cniVersion };
  out.interfaces = r.interfaces.map((i) => {
    const o: Record<string, unknown> = { name: i.name };
    if (i.mac) o.mac = i.mac;
    if (i.mtu !== undefined && cniVersion === '1.1.0') o.mtu = i.mtu;
    if (i.sandbox) o.sandbox = i.sandbox;
    return o;
  });
  out.ips = r.ips.map((ip) => {
    const o: Record<string, unknown> = {};
    if (old) o.version = ip.address.includes(':') ? '6' : '4';
    o.address = ip.address;
    if (ip.gateway) o.gateway = ip.gateway;
    if (ip.interface !== undefined) o.interface = ip.interface;
    return o;
  });
  if (r.routes.length > 0) out.routes = r.routes;
  out.dns = r.dns ?? {};
  return out;
}
