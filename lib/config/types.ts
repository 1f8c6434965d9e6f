// The typed network configuration, derived from the JSON Schema (schema.ts, the single
// source of truth) as ajv leaves it after filling in defaults — see infer.ts.
import type { Infer } from './infer.js';
import type { node, schema } from './schema.js';

export type NetConf = Infer<typeof schema>;
export type IpamConf = NonNullable<NetConf['ipam']>;
export type RawRange = NonNullable<IpamConf['ranges']>[number][number];
export type RawRoute = NonNullable<IpamConf['routes']>[number];
export type DnsConf = NonNullable<NetConf['dns']>;
export type RuntimeConfig = NonNullable<NetConf['runtimeConfig']>;
export type Attachment = NonNullable<NetConf['cni.dev/valid-attachments']>[number];
export type LogLevel = NetConf['logLevel'];
export type NodeEntry = Infer<typeof node>;
