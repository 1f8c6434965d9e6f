// A CRI client for the tests (crictl is not packaged in Debian 12): runtime.v1.RuntimeService
// over containerd's unix socket with @grpc/grpc-js, and the few messages a CNI test needs
// encoded by hand (field numbers from k8s.io/cri-api runtime/v1 api.proto).
import * as grpc from '@grpc/grpc-js';

// --- protobuf, just enough: varints, strings, nested messages, maps ---
type Field = [number, number | string | boolean | Buffer | undefined];

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n;
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return Buffer.from(out);
}

export function msg(fields: Field[]): Buffer {
  const parts: Buffer[] = [];
  for (const [no, v] of fields) {
    if (v === undefined) continue;
    if (typeof v === 'number' || typeof v === 'boolean') parts.push(varint(no << 3), varint(Number(v)));
    else {
      const b = typeof v === 'string' ? Buffer.from(v) : v;
      parts.push(varint((no << 3) | 2), varint(b.length), b);
    }
  }
  return Buffer.concat(parts);
}

const mapEntries = (no: number, m: Record<string, string>): Field[] => Object.entries(m).map(([k, v]) => [no, msg([[1, k], [2, v]])]);

/** Decodes one message level: field number → values (numbers, or raw bytes of strings/messages). */
export function decode(b: Buffer): Map<number, (number | Buffer)[]> {
  const out = new Map<number, (number | Buffer)[]>();
  let i = 0;
  const readVarint = (): number => {
    let r = 0n;
    let s = 0n;
    for (;;) {
      const x = b[i++]!;
      r |= BigInt(x & 0x7f) << s;
      if (!(x & 0x80)) return Number(r);
      s += 7n;
    }
  };
  while (i < b.length) {
    const key = readVarint();
    const no = key >> 3;
    const wt = key & 7;
    let v: number | Buffer;
    if (wt === 0) v = readVarint();
    else if (wt === 2) {
      const len = readVarint();
      v = b.subarray(i, i + len);
      i += len;
    } else if (wt === 1) {
      v = Number(b.readBigUInt64LE(i));
      i += 8;
    } else if (wt === 5) {
      v = b.readUInt32LE(i);
      i += 4;
    } else throw new Error(`protobuf wire type ${wt}`);
    out.set(no, [...(out.get(no) ?? []), v]);
  }
  return out;
}
const str = (m: Map<number, (number | Buffer)[]>, no: number): string => ((m.get(no)?.[0] as Buffer | undefined) ?? Buffer.alloc(0)).toString();
const sub = (m: Map<number, (number | Buffer)[]>, no: number): Map<number, (number | Buffer)[]> => decode((m.get(no)?.[0] as Buffer | undefined) ?? Buffer.alloc(0));

export interface SandboxSpec {
  name: string;
  namespace: string;
  uid: string;
  annotations?: Record<string, string>;
  portMappings?: { containerPort: number; hostPort: number; protocol?: 'tcp' | 'udp'; hostIp?: string }[];
  logDirectory: string;
  /** LinuxPodSandboxConfig.cgroup_parent, as kubelet sets it (its kubepods tree); unset: the runtime's default. */
  cgroupParent?: string;
}

export class Cri {
  private readonly client: grpc.Client;

  constructor(socket: string) {
    this.client = new grpc.Client(`unix://${socket}`, grpc.credentials.createInsecure());
  }

  private call(method: string, body: Buffer, timeoutMs = 60_000): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(`/runtime.v1.RuntimeService/${method}`, (x: Buffer) => x, (x: Buffer) => x, body,
        new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(new Error(`${method}: ${err.message}`)) : resolve(res!)));
    });
  }

  async version(): Promise<{ runtimeName: string; runtimeVersion: string; apiVersion: string }> {
    const m = decode(await this.call('Version', msg([[1, 'v1']])));
    return { runtimeName: str(m, 2), runtimeVersion: str(m, 3), apiVersion: str(m, 4) };
  }

  async runPodSandbox(s: SandboxSpec): Promise<string> {
    const metadata = msg([[1, s.name], [2, s.uid], [3, s.namespace], [4, 0]]);
    const ports: Field[] = (s.portMappings ?? []).map((p) => [5, msg([[1, p.protocol === 'udp' ? 1 : 0], [2, p.containerPort], [3, p.hostPort], [4, p.hostIp]])]);
    const config = msg([[1, metadata], [2, s.name], [3, s.logDirectory], ...ports, ...mapEntries(7, s.annotations ?? {}), [8, msg([[1, s.cgroupParent]])]]);
    return str(decode(await this.call('RunPodSandbox', msg([[1, config]]), 120_000)), 1);
  }

  async podSandboxStatus(id: string): Promise<{ state: number; ip: string; ips: string[] }> {
    const status = sub(decode(await this.call('PodSandboxStatus', msg([[1, id]]))), 1);
    const net = sub(status, 5);
    const extra = (net.get(2) ?? []).map((b) => str(decode(b as Buffer), 1));
    return { state: Number(status.get(3)?.[0] ?? 0), ip: str(net, 1), ips: [str(net, 1), ...extra].filter(Boolean) };
  }

  async stopPodSandbox(id: string): Promise<void> {
    await this.call('StopPodSandbox', msg([[1, id]]), 120_000);
  }

  async removePodSandbox(id: string): Promise<void> {
    await this.call('RemovePodSandbox', msg([[1, id]]), 120_000);
  }

  close(): void {
    this.client.close();
  }
}
