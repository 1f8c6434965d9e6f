// What the API server would refuse, judged before a file of objects means anything: a label
// value that is a number (`tier: 1`), `protocol: udp`, a port name that is no IANA service
// name… The parser (objects.ts) reads what the API server stores — valid by construction —
// and would otherwise drop or default such a field, silently changing what a policy selects.
// Every field twill reads is judged by the API server's own rules (apimachinery's
// validation: qualified names, label values, DNS-1123 names, IANA_SVC_NAME; networking's
// ValidateNetworkPolicySpec: peers, ports, endPort, ipBlock, policyTypes; core's pod IPs);
// fields twill does not read cannot change a verdict and are not judged.
import { bits, contains, network, parseAddr, parseCidr } from '../net/ip.js';

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);
const shown = (x: unknown): string => (typeof x === 'string' ? JSON.stringify(x) : Array.isArray(x) ? 'a list' : isObj(x) ? 'an object' : `the ${typeof x} ${String(x)}`);

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function dnsLabel(s: string): string | undefined {
  if (s.length > 63) return 'must be no more than 63 characters';
  return DNS1123_LABEL.test(s) ? undefined : 'must be a lowercase RFC 1123 label (a-z, 0-9 and "-", starting and ending with a letter or digit)';
}

function dnsSubdomain(s: string): string | undefined {
  if (s.length > 253) return 'must be no more than 253 characters';
  return DNS1123_SUBDOMAIN.test(s) ? undefined : 'must be a lowercase RFC 1123 subdomain (a-z, 0-9, "-" and ".", starting and ending with a letter or digit)';
}

function qualifiedName(s: string): string | undefined {
  const parts = s.split('/');
  if (parts.length > 2) return 'a qualified name has at most one "/"';
  const name = parts.at(-1)!;
  if (parts.length === 2) {
    if (parts[0] === '') return 'the prefix before "/" must not be empty';
    const p = dnsSubdomain(parts[0]!);
    if (p) return `prefix: ${p}`;
  }
  if (name === '') return 'the name part must not be empty';
  if (name.length > 63) return 'the name part must be no more than 63 characters';
  return QUALIFIED_NAME.test(name) ? undefined : 'the name part must consist of alphanumerics, "-", "_" or ".", starting and ending with an alphanumeric';
}

function labelValue(s: string): string | undefined {
  if (s.length > 63) return 'must be no more than 63 characters';
  return LABEL_VALUE.test(s) ? undefined : 'must be empty or consist of alphanumerics, "-", "_" or ".", starting and ending with an alphanumeric';
}

/** IANA_SVC_NAME (RFC 6335): what a named port may be. */
function portName(s: string): string | undefined {
  if (s.length < 1 || s.length > 15) return 'a port name must be 1 to 15 characters';
  if (!/^[-a-z0-9]+$/.test(s)) return 'a port name must contain only a-z, 0-9 and "-"';
  if (!/[a-z]/.test(s)) return 'a port name must contain at least one letter';
  if (s.includes('--')) return 'a port name must not contain "--"';
  if (s.startsWith('-') || s.endsWith('-')) return 'a port name must not begin or end with "-"';
  return undefined;
}

const portNumber = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 1 && x <= 65535;

class Check {
  readonly errors: string[] = [];
  constructor(private readonly what: string) {}

  fail(path: string, msg: string): void {
    this.errors.push(`${this.what}: ${path}: ${msg}`);
  }

  /** A string, or absent when optional; the string or undefined. */
  str(x: unknown, path: string, optional = true): string | undefined {
    if (x === undefined || x === null) {
      if (!optional) this.fail(path, 'required');
      return undefined;
    }
    if (typeof x !== 'string') {
      this.fail(path, `must be a string, not ${shown(x)}`);
      return undefined;
    }
    return x;
  }

  list(x: unknown, path: string): unknown[] {
    if (x === undefined || x === null) return [];
    if (!Array.isArray(x)) {
      this.fail(path, `must be a list, not ${shown(x)}`);
      return [];
    }
    return x;
  }

  obj(x: unknown, path: string): Obj | undefined {
    if (x === undefined || x === null) return undefined;
    if (!isObj(x)) {
      this.fail(path, `must be an object, not ${shown(x)}`);
      return undefined;
    }
    return x;
  }

  labels(x: unknown, path: string): void {
    for (const [k, v] of Object.entries(this.obj(x, path) ?? {})) {
      const kp = `${path}.${k}`;
      const bad = qualifiedName(k);
      if (bad) this.fail(kp, `invalid label key ${JSON.stringify(k)}: ${bad}`);
      if (v === null || v === undefined) {
        this.fail(kp, 'must be a string (an empty value is written ""), not null');
        continue;
      }
      const s = this.str(v, kp, false);
      const badv = s === undefined ? undefined : labelValue(s);
      if (badv) this.fail(kp, `invalid label value ${JSON.stringify(s)}: ${badv}`);
    }
  }

  selector(x: unknown, path: string): void {
    const o = this.obj(x, path);
    if (!o) return;
    this.labels(o.matchLabels, `${path}.matchLabels`);
    this.list(o.matchExpressions, `${path}.matchExpressions`).forEach((e, i) => {
      const ep = `${path}.matchExpressions[${i}]`;
      const r = this.obj(e, ep);
      if (!r) return this.fail(ep, 'required');
      const key = this.str(r.key, `${ep}.key`, false);
      const badKey = key === undefined ? undefined : qualifiedName(key);
      if (badKey) this.fail(`${ep}.key`, `invalid label key ${JSON.stringify(key)}: ${badKey}`);
      const values = this.list(r.values, `${ep}.values`);
      values.forEach((v, j) => {
        const s = this.str(v, `${ep}.values[${j}]`, false);
        const bad = s === undefined ? undefined : labelValue(s);
        if (bad) this.fail(`${ep}.values[${j}]`, `invalid label value ${JSON.stringify(s)}: ${bad}`);
      });
      const op = this.str(r.operator, `${ep}.operator`, false);
      if (op === 'In' || op === 'NotIn') {
        if (values.length === 0) this.fail(`${ep}.values`, `must be specified when \`operator\` is ${op}`);
      } else if (op === 'Exists' || op === 'DoesNotExist') {
        if (values.length > 0) this.fail(`${ep}.values`, `may not be specified when \`operator\` is ${op}`);
      } else if (op !== undefined) {
        this.fail(`${ep}.operator`, `not a valid selector operator: ${JSON.stringify(op)} (In, NotIn, Exists, DoesNotExist)`);
      }
    });
  }

  ip(x: unknown, path: string): string | undefined {
    const s = this.str(x, path, false);
    if (s !== undefined && !parseAddr(s)) this.fail(path, `must be a valid IP address, not ${JSON.stringify(s)}`);
    return s;
  }
}

/** metadata: name (DNS-1123 subdomain, or label for a Namespace), namespace (label), labels. */
function meta(c: Check, o: Obj, nameRule: (s: string) => string | undefined, namespaced: boolean): void {
  const m = c.obj(o.metadata, 'metadata') ?? {};
  const name = c.str(m.name, 'metadata.name', false);
  const badName = name === undefined ? undefined : nameRule(name);
  if (badName) c.fail('metadata.name', badName);
  if (namespaced) {
    const ns = c.str(m.namespace, 'metadata.namespace');
    // Absent or empty: the default namespace, as kubectl fills it in.
    const badNs = ns ? dnsLabel(ns) : undefined;
    if (badNs) c.fail('metadata.namespace', badNs);
  }
  c.labels(m.labels, 'metadata.labels');
}

function pod(c: Check, o: Obj): void {
  meta(c, o, dnsSubdomain, true);
  const spec = c.obj(o.spec, 'spec') ?? {};
  const node = c.str(spec.nodeName, 'spec.nodeName');
  const badNode = node ? dnsSubdomain(node) : undefined;
  if (badNode) c.fail('spec.nodeName', badNode);
  if (spec.hostNetwork !== undefined && typeof spec.hostNetwork !== 'boolean') c.fail('spec.hostNetwork', `must be a boolean, not ${shown(spec.hostNetwork)}`);
  c.list(spec.containers, 'spec.containers').forEach((ct, i) => {
    const cp = `spec.containers[${i}]`;
    c.list(c.obj(ct, cp)?.ports, `${cp}.ports`).forEach((p, j) => {
      const pp = `${cp}.ports[${j}]`;
      const port = c.obj(p, pp) ?? {};
      if (!portNumber(port.containerPort)) c.fail(`${pp}.containerPort`, `must be an integer between 1 and 65535, not ${shown(port.containerPort)}`);
      const proto = c.str(port.protocol, `${pp}.protocol`);
      if (proto !== undefined && !['TCP', 'UDP', 'SCTP'].includes(proto)) c.fail(`${pp}.protocol`, `unsupported value ${JSON.stringify(proto)}: TCP, UDP or SCTP`);
      const name = c.str(port.name, `${pp}.name`);
      const badName = name ? portName(name) : undefined;
      if (badName) c.fail(`${pp}.name`, badName);
    });
  });
  const st = c.obj(o.status, 'status') ?? {};
  const phase = c.str(st.phase, 'status.phase');
  if (phase !== undefined && !['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'].includes(phase)) c.fail('status.phase', `unsupported value ${JSON.stringify(phase)}`);
  const podIP = st.podIP === undefined || st.podIP === null || st.podIP === '' ? undefined : c.ip(st.podIP, 'status.podIP');
  const ips = c.list(st.podIPs, 'status.podIPs').map((p, i) => c.ip(c.obj(p, `status.podIPs[${i}]`)?.ip, `status.podIPs[${i}].ip`));
  const addrs = ips.map((s) => (s === undefined ? undefined : parseAddr(s)));
  if (ips.length > 2) c.fail('status.podIPs', 'may specify no more than one IP for each IP family');
  if (addrs.length === 2 && addrs[0] && addrs[1] && addrs[0].family === addrs[1].family) c.fail('status.podIPs', 'expected at most one IP for each IP family');
  if (podIP !== undefined && ips.length > 0 && ips[0] !== podIP) c.fail('status.podIPs[0].ip', 'must match status.podIP');
  const m = isObj(o.metadata) ? o.metadata : {};
  for (const t of ['creationTimestamp', 'deletionTimestamp']) {
    const s = c.str(m[t], `metadata.${t}`);
    if (s !== undefined && Number.isNaN(Date.parse(s))) c.fail(`metadata.${t}`, `must be an RFC 3339 time, not ${JSON.stringify(s)}`);
  }
  c.list(st.containerStatuses, 'status.containerStatuses').forEach((s, i) => {
    const cs = c.obj(s, `status.containerStatuses[${i}]`);
    c.obj(cs?.state, `status.containerStatuses[${i}].state`);
  });
}

function peer(c: Check, x: unknown, path: string): void {
  const p = c.obj(x, path);
  if (!p) return c.fail(path, 'must specify a peer');
  const has = (k: string): boolean => p[k] !== undefined && p[k] !== null;
  const n = ['podSelector', 'namespaceSelector', 'ipBlock'].filter(has).length;
  if (n === 0) return c.fail(path, 'must specify a peer');
  if (n > 1 && has('ipBlock')) c.fail(path, 'may not specify both ipBlock and another peer');
  if (has('podSelector')) c.selector(p.podSelector, `${path}.podSelector`);
  if (has('namespaceSelector')) c.selector(p.namespaceSelector, `${path}.namespaceSelector`);
  if (!has('ipBlock')) return;
  const b = c.obj(p.ipBlock, `${path}.ipBlock`) ?? {};
  const cidrText = c.str(b.cidr, `${path}.ipBlock.cidr`, false);
  const cidr = cidrText === undefined ? undefined : parseCidr(cidrText);
  if (cidrText !== undefined && !cidr) c.fail(`${path}.ipBlock.cidr`, `must be a valid CIDR (e.g. 10.0.0.0/16 or fd00::/64), not ${JSON.stringify(cidrText)}`);
  c.list(b.except, `${path}.ipBlock.except`).forEach((e, i) => {
    const ep = `${path}.ipBlock.except[${i}]`;
    const text = c.str(e, ep, false);
    if (text === undefined) return;
    const ex = parseCidr(text);
    if (!ex) return c.fail(ep, `must be a valid CIDR, not ${JSON.stringify(text)}`);
    // The API server's rule: inside cidr and strictly smaller.
    if (cidr && !(ex.addr.family === cidr.addr.family && ex.prefix > cidr.prefix && ex.prefix <= bits(ex.addr.family) && contains(network(cidr), network(ex).addr))) {
      c.fail(ep, `must be a strict subset of \`cidr\` ${cidrText}`);
    }
  });
}

function ports(c: Check, x: unknown, path: string): void {
  c.list(x, path).forEach((p, i) => {
    const pp = `${path}[${i}]`;
    const o = c.obj(p, pp) ?? {};
    const proto = c.str(o.protocol, `${pp}.protocol`);
    if (proto !== undefined && !['TCP', 'UDP', 'SCTP'].includes(proto)) c.fail(`${pp}.protocol`, `unsupported value ${JSON.stringify(proto)}: TCP, UDP or SCTP`);
    const port = o.port;
    const numeric = typeof port === 'number';
    if (port !== undefined && port !== null) {
      if (numeric) {
        if (!portNumber(port)) c.fail(`${pp}.port`, `must be an integer between 1 and 65535, not ${shown(port)}`);
      } else if (typeof port === 'string') {
        const bad = portName(port);
        if (bad) c.fail(`${pp}.port`, `${bad} (${JSON.stringify(port)}; a number is written without quotes)`);
      } else {
        c.fail(`${pp}.port`, `must be a port number or name, not ${shown(port)}`);
      }
    }
    if (o.endPort !== undefined && o.endPort !== null) {
      if (port === undefined || port === null) c.fail(`${pp}.endPort`, 'may not be specified when `port` is not specified');
      else if (!numeric) c.fail(`${pp}.endPort`, 'may not be specified when `port` is non-numeric');
      if (!portNumber(o.endPort)) c.fail(`${pp}.endPort`, `must be an integer between 1 and 65535, not ${shown(o.endPort)}`);
      else if (numeric && o.endPort < (port as number)) c.fail(`${pp}.endPort`, `must be greater than or equal to \`port\` (${port})`);
    }
  });
}

function policy(c: Check, o: Obj): void {
  meta(c, o, dnsSubdomain, true);
  const spec = c.obj(o.spec, 'spec') ?? {};
  c.selector(spec.podSelector, 'spec.podSelector');
  for (const [dir, peers] of [['ingress', 'from'], ['egress', 'to']] as const) {
    c.list(spec[dir], `spec.${dir}`).forEach((r, i) => {
      const rp = `spec.${dir}[${i}]`;
      const rule = c.obj(r, rp) ?? {};
      c.list(rule[peers], `${rp}.${peers}`).forEach((p, j) => peer(c, p, `${rp}.${peers}[${j}]`));
      ports(c, rule.ports, `${rp}.ports`);
    });
  }
  const types = c.list(spec.policyTypes, 'spec.policyTypes');
  if (types.length > 2) c.fail('spec.policyTypes', 'may not specify more than two policyTypes');
  types.forEach((t, i) => {
    const s = c.str(t, `spec.policyTypes[${i}]`, false);
    if (s !== undefined && s !== 'Ingress' && s !== 'Egress') c.fail(`spec.policyTypes[${i}]`, `unsupported value ${JSON.stringify(s)}: Ingress or Egress`);
  });
}

/** What the API server would refuse in these objects (Lists expanded); empty when it would take them all. */
export function refusals(items: unknown[]): string[] {
  const out: string[] = [];
  for (const it of items) {
    if (!isObj(it)) {
      out.push(`an item that is not an object (${shown(it)})`);
      continue;
    }
    const kind = typeof it.kind === 'string' ? it.kind : '';
    if (kind === 'List' || kind.endsWith('List')) {
      const inner = Array.isArray(it.items) ? it.items : [];
      out.push(...refusals(inner.map((i) => (isObj(i) && typeof i.kind !== 'string' ? { ...i, kind: kind.slice(0, -4) } : i))));
      continue;
    }
    const m = isObj(it.metadata) ? it.metadata : {};
    const id = `${typeof m.namespace === 'string' && kind !== 'Namespace' ? `${m.namespace}/` : ''}${typeof m.name === 'string' ? m.name : '(unnamed)'}`;
    const c = new Check(`${kind || '(no kind)'} ${id}`);
    if (kind === 'Namespace') meta(c, it, dnsLabel, false);
    else if (kind === 'Pod') pod(c, it);
    else if (kind === 'NetworkPolicy') policy(c, it);
    out.push(...c.errors);
  }
  return out;
}
