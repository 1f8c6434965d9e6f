// tcx attachment: a bpf_link of the program on a device's ingress or egress, pinned so it
// outlives the process that made it; switched to a new program by LINK_UPDATE.
import { readdirSync, unlinkSync } from '../../sys/fs.js';
import { EEXIST } from '../../sys/libc.js';
import { AttachType, closeFd, linkCreateTcx, linkUpdate, objGet, objPin } from '../sys.js';
import { isErrno } from '../pins.js';

/** Attaches progFd to ifindex's ingress or egress and pins the link at pin (replacing a stale pin). */
export function attachTcx(progFd: number, ifindex: number, dir: 'ingress' | 'egress', pin: string): void {
  const fd = linkCreateTcx(progFd, ifindex, dir === 'ingress' ? AttachType.TcxIngress : AttachType.TcxEgress);
  try {
    try {
      objPin(fd, pin);
    } catch (e) {
      if (!isErrno(e, EEXIST)) throw e;
      unlinkSync(pin); // left by an earlier attempt for this attachment
      objPin(fd, pin);
    }
  } finally {
    closeFd(fd); // the pin keeps the link alive after we exit
  }
}

/** Points every link pinned in dir (those which() picks) at the program progFor(pin name) gives. */
export function switchLinks(dir: string, progFor: (pin: string) => number, which: (pin: string) => boolean = () => true): void {
  for (const name of readdirSync(dir)) {
    if (!which(name)) continue;
    const fd = objGet(`${dir}/${name}`);
    if (fd === undefined) continue;
    try {
      linkUpdate(fd, progFor(name));
    } finally {
      closeFd(fd);
    }
  }
}
