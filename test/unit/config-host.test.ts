import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NetworkInterfaceInfo } from 'node:os';
import { systemHostInfo } from '../../src/config';
import type { HostProbes } from '../../src/config/host';

function info(address: string, family: 'IPv4' | 'IPv6'): NetworkInterfaceInfo {
  const common = { address, netmask: '', mac: '00:00:00:00:00:00', internal: false, cidr: null };
  return family === 'IPv4' ? { ...common, family } : { ...common, family, scopeid: 0 };
}

test('addresses come from os.networkInterfaces, IPv4 and IPv6 apart, in kernel order', () => {
  let ipCalls = 0;
  const probes: HostProbes = {
    networkInterfaces: () => ({
      eth0: [info('192.0.2.1', 'IPv4'), info('fe80::1', 'IPv6'), info('192.0.2.7', 'IPv4')],
    }),
    linkNames: () => ['eth0'],
    ipAddrJson: () => {
      ipCalls++;
      return '[]';
    },
  };
  assert.deepEqual(
    [...systemHostInfo(probes).interfaces()],
    [['eth0', { addresses: ['192.0.2.1', '192.0.2.7'], addresses6: ['fe80::1'] }]],
  );
  assert.equal(ipCalls, 0, 'no fork when os.networkInterfaces already lists every link');
});

test('a link hidden by os.networkInterfaces (no carrier) is looked up with ip', () => {
  const probes: HostProbes = {
    networkInterfaces: () => ({ eth0: [info('192.0.2.1', 'IPv4')] }),
    linkNames: () => ['eth0', 'eth1', 'dummy0'],
    ipAddrJson: () =>
      JSON.stringify([
        { ifname: 'eth0', addr_info: [{ family: 'inet', local: '192.0.2.1' }] },
        {
          ifname: 'eth1',
          addr_info: [
            { family: 'inet', local: '198.51.100.1' },
            { family: 'inet', local: '198.51.100.9' },
          ],
        },
      ]),
  };
  const interfaces = systemHostInfo(probes).interfaces();
  assert.deepEqual(interfaces.get('eth1'), { addresses: ['198.51.100.1', '198.51.100.9'] });
  assert.deepEqual(
    interfaces.get('dummy0'),
    { addresses: [] },
    'an existing link without address still exists',
  );
});

test('a failing ip command only loses the fallback', () => {
  const probes: HostProbes = {
    networkInterfaces: () => ({ eth0: [info('192.0.2.1', 'IPv4')] }),
    linkNames: () => ['eth0', 'eth1'],
    ipAddrJson: () => {
      throw new Error('spawn ip ENOENT');
    },
  };
  const interfaces = systemHostInfo(probes).interfaces();
  assert.deepEqual(interfaces.get('eth0'), { addresses: ['192.0.2.1'], addresses6: [] });
  assert.deepEqual(interfaces.get('eth1'), { addresses: [] });
});

test('the real host has a loopback interface with 127.0.0.1', () => {
  assert.deepEqual(systemHostInfo().interfaces().get('lo')?.addresses.includes('127.0.0.1'), true);
});
