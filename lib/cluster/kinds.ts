// Every kind twill reads from the API server, in one registry: where it is listed and
// watched, how one object is parsed (only the fields used) and keyed, and what a file's
// object of the kind that does not parse is skipped for. A new kind is one entry here; the
// cache (cache.ts) stores it and reconcilers subscribe to it.
import { parseNamespace, parsePod, parsePolicy, type NamespaceObj, type PodObj, type PolicyObj } from '../policy/objects.js';
import { parseEndpointSlice, parseNode, parseService, type EndpointSliceObj, type NodeObj, type ServiceObj } from './objects.js';

export interface KindSpec<T> {
  /** The collection's list and watch path. */
  path: string;
  /** Keyed "namespace/name" (a missing namespace is "default", as the API server defaults it), else by name. */
  namespaced: boolean;
  /** undefined: an object twill does not keep (no name; for Pods: host network or finished). */
  parse(raw: unknown): T | undefined;
  /** Why a file's object that does not parse is skipped. */
  unparsed: string;
}

export interface Kinds {
  Node: NodeObj;
  Namespace: NamespaceObj;
  Pod: PodObj;
  NetworkPolicy: PolicyObj;
  Service: ServiceObj;
  EndpointSlice: EndpointSliceObj;
}

export type KindName = keyof Kinds;

export const KINDS: { readonly [K in KindName]: KindSpec<Kinds[K]> } = {
  Node: { path: '/api/v1/nodes', namespaced: false, parse: parseNode, unparsed: 'no name' },
  Namespace: { path: '/api/v1/namespaces', namespaced: false, parse: parseNamespace, unparsed: 'no name' },
  Pod: { path: '/api/v1/pods', namespaced: true, parse: parsePod, unparsed: 'no name, host network or finished' },
  NetworkPolicy: { path: '/apis/networking.k8s.io/v1/networkpolicies', namespaced: true, parse: parsePolicy, unparsed: 'no name' },
  Service: { path: '/api/v1/services', namespaced: true, parse: parseService, unparsed: 'no name' },
  EndpointSlice: { path: '/apis/discovery.k8s.io/v1/endpointslices', namespaced: true, parse: parseEndpointSlice, unparsed: 'no name' },
};

export const isKind = (k: string): k is KindName => Object.prototype.hasOwnProperty.call(KINDS, k);

/** The store key of a raw object: the same for its ADDED, MODIFIED and DELETED events, parsed or not. */
export function rawKey(kind: KindName, raw: unknown): string {
  const m = typeof raw === 'object' && raw !== null ? ((raw as { metadata?: { name?: unknown; namespace?: unknown } }).metadata ?? {}) : {};
  const name = typeof m.name === 'string' ? m.name : '';
  if (!KINDS[kind].namespaced) return name;
  return `${typeof m.namespace === 'string' && m.namespace ? m.namespace : 'default'}/${name}`;
}
