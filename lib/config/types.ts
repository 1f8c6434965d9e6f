// The typed network configuration, as the schema (schema.ts) defines it after defaults.

export interface RawRange {
  subnet: string;
  rangeStart?: string;
  rangeEnd?: string;
  gateway?: string;
}

export interface RawRoute {
  dst: string;
  gw?: string;
}

export interface Attachment {
  containerID: string;
  ifname: string;
}

export interface IpamConf {
  type: string;
  ranges?: RawRange[][];
  subnet?: string;
  rangeStart?: string;
  rangeEnd?: string;
  gateway?: string;
  routes?: RawRoute[];
  dataDir: string;
  resolvConf?: string;
  [extra: string]: unknown;
}

export interface DnsConf {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface RuntimeConfig {
  ips?: string[];
  ipRanges?: RawRange[][];
  bandwidth?: Record<string, unknown>;
  portMappings?: unknown[];
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface NodeEntry {
  name: string;
  ip: string;
  ip6?: string;
  podCIDRs: string[];
}

export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  mtu?: number;
  datapath: 'auto' | 'ebpf' | 'routed';
  backend: 'none' | 'vxlan' | 'hostgw';
  vxlan: { vni: number; port: number; device?: string; txChecksumOffload: 'auto' | 'on' | 'off' };
  nodeName?: string;
  nodes?: NodeEntry[];
  nodesFile?: string;
  clusterCIDRs?: string[];
  bpffsRoot: string;
  ebpfAttach: 'auto' | 'tcx' | 'legacy';
  maxEndpoints: number;
  hostVethPrefix: string;
  logFile?: string;
  logLevel: LogLevel;
  stateDir: string;
  ipMasq: boolean;
  ipam?: IpamConf;
  dns?: DnsConf;
  capabilities?: Record<string, boolean>;
  runtimeConfig?: RuntimeConfig;
  args?: { cni?: { ips?: string[] } };
  prevResult?: Record<string, unknown>;
  'cni.dev/valid-attachments'?: Attachment[];
  'cni.dev/attachments'?: Attachment[];
}
