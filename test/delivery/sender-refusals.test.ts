// The sender refuses internal addresses at delivery time, whatever the URL's spelling and whatever DNS answers
// now. Loopback forms aim at a live receiver to prove not a single connection reaches it; other internal
// addresses are never contacted at all (no traffic leaves the machine), so for those the refusal is the proof.
import dns from 'node:dns';
import type { LookupAddress } from 'node:dns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AddressGuard, createAddressGuard, type Resolve } from '../../server/delivery/address-guard.js';
import { createHttpSender, type HttpSender } from '../../server/delivery/http-sender.js';
import { type Receiver, startReceiver } from './receiver.js';

const body = '{"type":"webhook.test"}';
let hook: Receiver;
const senders: HttpSender[] = [];

beforeAll(async () => {
  hook = await startReceiver();
});
afterAll(async () => {
  await Promise.all(senders.map((sender) => sender.close()));
  await hook.close();
});

function senderWith(guard: AddressGuard): HttpSender {
  const sender = createHttpSender({ guard, timeoutMs: 2000, userAgent: 'refusal-test' });
  senders.push(sender);
  return sender;
}

const strictSender = () => senderWith(createAddressGuard({ allowedCidrs: [] }));

// [name, host as written in the callback URL]
const loopbackHosts: Array<[string, string]> = [
  ['loopback', '127.0.0.1'],
  ['loopback, short form', '127.1'],
  ['loopback, one decimal number', '2130706433'],
  ['loopback, hex', '0x7f.1'],
  ['loopback, octal', '0177.0.0.1'],
  ['localhost', 'localhost'],
  ['a localhost subdomain', 'foo.localhost'],
  ['unspecified, which Linux connects to this machine', '0.0.0.0'],
  ['IPv4-mapped loopback', '[::ffff:127.0.0.1]'],
  ['IPv4-mapped loopback, hex', '[::ffff:7f00:1]'],
  ['IPv6 loopback', '[::1]'],
  ['IPv6 unspecified', '[::]'],
];

const internalHosts: Array<[string, string]> = [
  ['private 10/8', '10.0.0.1'],
  ['private 172.16/12', '172.16.0.1'],
  ['private 192.168/16', '192.168.1.1'],
  ['cloud metadata', '169.254.169.254'],
  ['carrier-grade NAT', '100.64.0.1'],
  ['multicast', '224.0.0.1'],
  ['reserved', '240.0.0.1'],
  ['broadcast', '255.255.255.255'],
  ['documentation', '192.0.2.1'],
  ['IPv6 unique local', '[fc00::1]'],
  ['IPv6 link-local', '[fe80::1]'],
];

describe('with an empty allow-list, a send is refused before connecting to', () => {
  for (const [name, host] of loopbackHosts) {
    it(`${name}: ${host}`, async () => {
      const outcome = await strictSender().send({ url: `http://${host}:${hook.port}/hook`, headers: {}, body });
      expect(outcome).toMatchObject({ ok: false, reason: 'blocked_address' });
      expect(outcome.detail).toMatch(/; deliveries go to public addresses only\.$/);
      expect(hook.connections).toBe(0);
    });
  }

  for (const [name, host] of internalHosts) {
    it(`${name}: ${host}`, async () => {
      const outcome = await strictSender().send({ url: `https://${host}/hook`, headers: {}, body });
      expect(outcome).toMatchObject({ ok: false, reason: 'blocked_address' });
    });
  }

  it('names the address and its class in the detail', async () => {
    const outcome = await strictSender().send({ url: `http://2130706433:${hook.port}/`, headers: {}, body });
    expect(outcome.detail).toBe('127.0.0.1 is a loopback address; deliveries go to public addresses only.');
  });
});

/** Answers each call with the next answer, as a DNS server that changes its records between two lookups. */
function rebinding(...answers: LookupAddress[][]): Resolve {
  return async () => answers.shift() ?? [];
}

describe('DNS rebinding', () => {
  it('a name that resolved public when saved and resolves to loopback at delivery is refused', async () => {
    const guard = createAddressGuard({
      allowedCidrs: [],
      resolve: rebinding([{ address: '93.184.216.34', family: 4 }], [{ address: '127.0.0.1', family: 4 }]),
    });
    // .test is reserved (RFC 6761): nothing real answers for it, only the injected resolver.
    expect(guard.checkHost('rebind.test')).toBeNull();
    const atSave = await new Promise((resolve) =>
      guard.lookup('rebind.test', { all: true }, (_, address) => resolve(address)),
    );
    expect(atSave).toEqual([{ address: '93.184.216.34', family: 4 }]);

    const outcome = await senderWith(guard).send({ url: `http://rebind.test:${hook.port}/hook`, headers: {}, body });

    expect(outcome).toMatchObject({
      ok: false,
      reason: 'blocked_address',
      detail: 'rebind.test resolves to a loopback address; deliveries go to public addresses only.',
    });
    expect(hook.connections).toBe(0);
  });

  it('the same name reaches the receiver when loopback is allowed, so the refusal above is the guard', async () => {
    const guard = createAddressGuard({
      allowedCidrs: ['127.0.0.0/8'],
      resolve: rebinding([{ address: '127.0.0.1', family: 4 }]),
    });
    const receiver = await startReceiver();
    try {
      const outcome = await senderWith(guard).send({ url: `http://rebind.test:${receiver.port}/`, headers: {}, body });
      expect(outcome).toMatchObject({ ok: true, responseStatus: 204 });
      expect(receiver.requests).toHaveLength(1);
    } finally {
      await receiver.close();
    }
  });

  it('localhost, resolved by the real resolver, is refused', async () => {
    const outcome = await strictSender().send({ url: `http://localhost:${hook.port}/hook`, headers: {}, body });
    expect(outcome).toMatchObject({ ok: false, reason: 'blocked_address' });
    expect(hook.connections).toBe(0);
  });
});

describe('the peer address check after connecting', () => {
  it('refuses a socket that reached a refused address even when lookup let it through', async () => {
    // A guard whose name checks are fooled; only its address check, applied to the socket's peer, still holds.
    const strict = createAddressGuard({ allowedCidrs: [] });
    const fooled: AddressGuard = {
      checkAddress: strict.checkAddress,
      checkHost: () => null,
      lookup: (_hostname, options, callback) => dns.lookup('127.0.0.1', options, callback),
    };
    const receiver = await startReceiver();
    try {
      const outcome = await senderWith(fooled).send({ url: `http://fooled.test:${receiver.port}/`, headers: {}, body });
      expect(outcome).toMatchObject({
        ok: false,
        reason: 'blocked_address',
        detail: expect.stringContaining('127.0.0.1 is a loopback address'),
      });
      expect(receiver.requests).toHaveLength(0);
    } finally {
      await receiver.close();
    }
  });
});
