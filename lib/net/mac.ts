// MAC addresses as "aa:bb:cc:dd:ee:ff" and as their six bytes: the form netlink, the maps and
// the state files share.

export const macString = (b: Buffer | undefined): string => (b ? [...b].map((x) => x.toString(16).padStart(2, '0')).join(':') : '');
export const macBytes = (s: string): Buffer => Buffer.from(s.split(':').map((x) => parseInt(x, 16)));
