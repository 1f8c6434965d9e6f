// ADD / CHECK / DEL of real pods in real namespaces, for every stack and result version.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { testNet, type Stack } from '../helpers/netconf.js';
import { cleanupNetns, hostLinks, hostLinksSettled, inNs, makeNetns, netnsPath, pingOk, removeDir, twill, type Env } from '../helpers/twill.js';

after(cleanupNetns);

const envFor = (verb: string, id: string, ns: string, ifName = 'eth0'): Env => ({ CNI_COMMAND: verb, CNI_CONTAINERID: id, CNI_NETNS: netnsPath(ns), CNI_IFNAME: ifName });
const addrOf = (cidr: string): string => cidr.slice(0, cidr.indexOf('/'));

for (const cniVersion of ['0.3.1', '0.4.0', '1.0.0', '1.1.0']) {
  for (const stack of ['v4', 'v6', 'dual'] as Stack[]) {
    describe(`attach ${stack} cniVersion ${cniVersion}`, () => {
      const net = testNet({ stack, cniVersion });
      const routes = stack === 'v6' ? [{ dst: '::/0' }] : stack === 'v4' ? [{ dst: '0.0.0.0/0' }] : [{ dst: '0.0.0.0/0' }, { dst: '::/0' }];
      const conf = net.conf({ mtu: 1400, ipam: { ...net.conf().ipam, routes } });
      const pods = [makeNetns(), makeNetns()];
      const results: Record<string, any>[] = [];
      after(() => {
        pods.forEach((p, i) => twill(envFor('DEL', `c${i}`, p), conf));
        removeDir(net.dataDir);
        removeDir(net.stateDir);
      });

      it('ADD returns a result in the requested version, shaped for chaining', () => {
        pods.forEach((p, i) => {
          const r = twill(envFor('ADD', `c${i}`, p), conf);
          assert.equal(r.code, 0, r.stdout + r.stderr);
          results.push(r.json);
          assert.equal(r.json.cniVersion, cniVersion);
          const [hostIf, podIf] = r.json.interfaces;
          assert.match(hostIf.name, /^twt[0-9a-f]{12}$/);
          assert.equal(hostIf.sandbox, undefined);
          assert.equal(podIf.name, 'eth0');
          assert.equal(podIf.sandbox, netnsPath(p));
          assert.equal(r.json.ips.length, stack === 'dual' ? 2 : 1);
          for (const ip of r.json.ips) {
            assert.equal(ip.interface, 1);
            if (cniVersion.startsWith('0.')) assert.equal(ip.version, ip.address.includes(':') ? '6' : '4');
            else assert.equal(ip.version, undefined);
          }
        });
        assert.notDeepEqual(results[0]!.ips, results[1]!.ips);
      });

      it('configures the pod: addresses without DAD, MTU, loopback, routes through the gateway', () => {
        const link = JSON.parse(inNs(pods[0]!, ['ip', '-j', 'addr', 'show', 'eth0']))[0];
        assert.equal(link.mtu, 1400);
        assert.ok(link.flags.includes('UP'));
        for (const ip of results[0]!.ips) {
          const a = link.addr_info.find((x: { local: string }) => x.local === addrOf(ip.address));
          assert.ok(a, `address ${ip.address} present`);
          if (ip.address.includes(':')) assert.ok(!a.tentative && a.nodad, 'IPv6 address is not waiting for DAD');
        }
        const lo = JSON.parse(inNs(pods[0]!, ['ip', '-j', 'link', 'show', 'lo']))[0];
        assert.ok(lo.flags.includes('UP'));
        for (const fam of stack === 'dual' ? ['-4', '-6'] : [stack === 'v4' ? '-4' : '-6']) {
          const def = JSON.parse(inNs(pods[0]!, ['ip', '-j', fam, 'route', 'show', 'default']));
          assert.equal(def.length, 1, `default route ${fam}`);
        }
      });

      it('pods reach each other and the host, both ways', () => {
        for (const ip of results[1]!.ips) assert.ok(pingOk(pods[0], addrOf(ip.address)), `pod0 → ${ip.address}`);
        for (const ip of results[0]!.ips) {
          assert.ok(pingOk(pods[1], addrOf(ip.address)), `pod1 → ${ip.address}`);
          assert.ok(pingOk(undefined, addrOf(ip.address)), `host → ${ip.address}`);
          assert.ok(pingOk(pods[0], ip.gateway), `pod0 → gateway ${ip.gateway}`);
        }
      });

      it(cniVersion === '0.3.1' ? 'CHECK is refused below 0.4.0' : 'CHECK passes on a healthy pod', () => {
        const r = twill(envFor('CHECK', 'c0', pods[0]!), { ...conf, prevResult: results[0] });
        if (cniVersion === '0.3.1') {
          assert.equal(r.code, 1);
          assert.equal(r.json.code, 1);
        } else {
          assert.equal(r.code, 0, r.stdout);
          assert.equal(r.stdout, '');
        }
      });

      it('DEL removes the veth and releases the addresses, twice in a row', () => {
        const host = results[0]!.interfaces[0].name;
        for (let i = 0; i < 2; i++) {
          const r = twill(envFor('DEL', 'c0', pods[0]!), { ...conf, prevResult: results[0] });
          assert.equal(r.code, 0, r.stdout);
        }
        assert.deepEqual(hostLinksSettled(host), []);
        const again = twill(envFor('ADD', 'c2', pods[0]!), conf);
        assert.equal(again.code, 0, again.stdout);
        twill(envFor('DEL', 'c2', pods[0]!), conf);
      });
    });
  }
}
