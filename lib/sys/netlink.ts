// A synchronous NETLINK_ROUTE socket. Synchronous on purpose: a socket is bound to the
// network namespace of the thread that creates it, and twill's work is a short sequence of
// requests that each need the previous answer.
import { DumpInterrupted } from './errors.js';
import { check, libc, SysError } from './libc.js';
import { message, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, splitMessages, type RawMessage } from './nlmsg.js';

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0x80000;
const NETLINK_ROUTE = 0;
const RECV_BUF = 1 << 16;

export class NetlinkError extends SysError {}

export class Netlink {
  private seq = 1;
  private readonly buf = Buffer.alloc(RECV_BUF);
  readonly fd: number;

  /** protocol: NETLINK_ROUTE unless given (NETLINK_NETFILTER for nftables' questions). */
  constructor(protocol = NETLINK_ROUTE) {
    this.fd = check('socket(AF_NETLINK)', libc().socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol));
  }

  close(): void {
    libc().close(this.fd);
  }

  private send(type: number, flags: number, body: Buffer): number {
    const seq = this.seq++;
    const msg = message(type, flags | NLM_F_REQUEST, seq, body);
    check('netlink send', libc().send(this.fd, msg, msg.length, 0));
    return seq;
  }

  private *receive(seq: number): Generator<RawMessage> {
    for (;;) {
      const n = check('netlink recv', libc().recv(this.fd, this.buf, this.buf.length, 0));
      for (const m of splitMessages(this.buf.subarray(0, n))) {
        if (m.seq !== seq) continue;
        // The receive buffer is reused by the next recv: hand out a copy.
        yield { ...m, body: Buffer.from(m.body) };
      }
    }
  }

  /** A request the kernel acknowledges; throws NetlinkError with the kernel's errno. */
  request(what: string, type: number, flags: number, body: Buffer): void {
    const seq = this.send(type, flags | NLM_F_ACK, body);
    for (const m of this.receive(seq)) {
      if (m.type === NLMSG_ERROR) {
        const err = -m.body.readInt32LE(0);
        if (err !== 0) throw new NetlinkError(what, err);
        return;
      }
    }
  }

  /** A GET that returns one object, or undefined when the kernel says it does not exist. */
  get(type: number, body: Buffer, missing: readonly number[]): RawMessage | undefined {
    const seq = this.send(type, 0, body);
    for (const m of this.receive(seq)) {
      if (m.type === NLMSG_ERROR) {
        const err = -m.body.readInt32LE(0);
        if (missing.includes(err)) return undefined;
        throw new NetlinkError('netlink get', err);
      }
      return m;
    }
    return undefined;
  }

  /** A dump, retried when the kernel marks it interrupted by concurrent changes. */
  dump(type: number, body: Buffer): RawMessage[] {
    for (let attempt = 0; attempt < 5; attempt++) {
      const seq = this.send(type, NLM_F_DUMP, body);
      const out: RawMessage[] = [];
      let interrupted = false;
      for (const m of this.receive(seq)) {
        if (m.flags & NLM_F_DUMP_INTR) interrupted = true;
        if (m.type === NLMSG_DONE) break;
        if (m.type === NLMSG_ERROR) {
          const err = -m.body.readInt32LE(0);
          if (err !== 0) throw new NetlinkError('netlink dump', err);
          break;
        }
        out.push(m);
      }
      if (!interrupted) return out;
    }
    throw new DumpInterrupted('netlink dump kept being interrupted by concurrent changes');
  }
}

/** Runs fn with a fresh socket in the current namespace, closing it after. */
export function withNetlink<T>(fn: (nl: Netlink) => T): T {
  const nl = new Netlink();
  try {
    return fn(nl);
  } finally {
    nl.close();
  }
}

