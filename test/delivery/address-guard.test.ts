// The guard only classifies: nothing here connects anywhere, so public addresses appear as data only.
import type { LookupAddress } from 'node:dns';
import { describe, expect, it } from 'vitest';
import { BlockedAddressError, createAddressGuard, type Resolve } from '../../server/delivery/address-guard.js';

const strict = createAddressGuard({ allowedCidrs: [] });

// [name, host as it may appear in a callback URL, refused?]
const hosts: Array<[string, string, boolean]> = [
  ['loopback', '127.0.0.1', true],
  ['loopback, short form', '127.1', true],
  ['loopback, one decimal number', '2130706433', true],
  ['loopback, hex and short', '0x7f.1', true],
  ['loopback, octal', '0177.0.0.1', true],
  ['loopback, one hex number', '0x7f000001', true],
  ['loopback, trailing dot', '127.0.0.1.', true],
  ['loopback, fullwidth digits', '１２７.０.０.１', true],
  ['localhost', 'localhost', true],
  ['localhost, upper case with trailing dot', 'LOCALHOST.', true],
  ['a localhost subdomain (RFC 6761)', 'foo.localhost', true],
  ['private 10/8', '10.0.0.1', true],
  ['private 172.16/12', '172.16.0.1', true],
  ['private 192.168/16', '192.168.1.1', true],
  ['link-local, cloud metadata', '169.254.169.254', true],
  ['carrier-grade NAT', '100.64.0.1', true],
  ['unspecified', '0.0.0.0', true],
  ['unspecified, as "0"', '0', true],
  ['this network 0/8', '0.1.2.3', true],
  ['multicast', '224.0.0.1', true],
  ['reserved 240/4', '240.0.0.1', true],
  ['broadcast', '255.255.255.255', true],
  ['documentation TEST-NET-1', '192.0.2.1', true],
  ['documentation TEST-NET-3', '203.0.113.7', true],
  ['benchmarking 198.18/15', '198.18.0.1', true],
  ['IPv6 loopback', '[::1]', true],
  ['IPv6 loopback, unbracketed', '::1', true],
  ['IPv6 unspecified', '[::]', true],
  ['IPv6 unique local', '[fc00::1]', true],
  ['IPv6 unique local fd00::/8', '[fd12:3456::1]', true],
  ['IPv6 link-local', '[fe80::1]', true],
  ['IPv6 multicast', '[ff02::1]', true],
  ['IPv4-mapped loopback', '[::ffff:127.0.0.1]', true],
  ['IPv4-mapped loopback, hex', '[::ffff:7f00:1]', true],
  ['IPv4-mapped private', '[::ffff:10.0.0.1]', true],
  ['IPv4-compatible loopback', '[::127.0.0.1]', true],
  ['6to4 of loopback', '[2002:7f00:1::]', true],
  ['NAT64 of loopback', '[64:ff9b::7f00:1]', true],
  ['Teredo', '[2001::1]', true],
  ['IPv6 documentation', '[2001:db8::1]', true],
  ['not a host: userinfo', 'user@example.com', true],
  ['not a host: a port', 'example.com:8080', true],
  ['not a host: a path', 'example.com/x', true],
  ['not a host: a space', 'exa mple.com', true],
  ['not a host: empty', '', true],
  ['public IPv4', '93.184.216.34', false],
  ['public IPv4, Cloudflare DNS', '1.1.1.1', false],
  ['public IPv6', '[2606:4700::1111]', false],
  ['IPv4-mapped public', '[::ffff:1.1.1.1]', false],
  ['a DNS name (resolved at delivery)', 'hooks.example.com', false],
  ['a name that merely contains localhost', 'localhost.example.com', false],
];

describe('checkHost with an empty allow-list', () => {
  for (const [name, host, refused] of hosts) {
    it(`${refused ? 'refuses' : 'accepts'} ${name}: ${JSON.stringify(host)}`, () => {
      const refusal = strict.checkHost(host);
      if (refused) expect(refusal).toEqual(expect.any(String));
      else expect(refusal).toBeNull();
    });
  }

  it('says why, naming the normalised address and its class', () => {
    expect(strict.checkHost('0x7f.1')).toBe('127.0.0.1 is a loopback address');
    expect(strict.checkHost('10.0.0.12')).toBe('10.0.0.12 is a private address');
    expect(strict.checkHost('[::ffff:169.254.169.254]')).toBe(
      '::ffff:a9fe:a9fe is a link-local address (169.254.169.254)',
    );
  });
});

// Addresses as a resolver or a socket reports them (no URL normalisation in between).
const addresses: Array<[string, string, boolean]> = [
  ['IPv4-mapped loopback, dotted', '::ffff:127.0.0.1', true],
  ['IPv4-compatible loopback', '::7f00:1', true],
  ['link-local with a zone', 'fe80::1%eth0', true],
  ['6to4 of a private address', '2002:a00:1::1', true],
  ['discard-only', '100::1', true],
  ['not an address', 'hooks.example.com', true],
  ['public IPv4', '8.8.8.8', false],
  ['public IPv6', '2001:4860:4860::8888', false],
];

describe('checkAddress with an empty allow-list', () => {
  for (const [name, ip, refused] of addresses) {
    it(`${refused ? 'refuses' : 'accepts'} ${name}: ${ip}`, () => {
      const refusal = strict.checkAddress(ip);
      if (refused) expect(refusal).toEqual(expect.any(String));
      else expect(refusal).toBeNull();
    });
  }
});

describe('the allow-list', () => {
  const local = createAddressGuard({ allowedCidrs: ['127.0.0.0/8'] });

  // [name, host, refused?]
  const cases: Array<[string, string, boolean]> = [
    ['allows an address in an allowed range', '127.0.0.1', false],
    ['allows the same address spelt oddly', '2130706433', false],
    ['allows it IPv4-mapped', '[::ffff:127.0.0.1]', false],
    ['allows localhost, which is loopback', 'localhost', false],
    ['still refuses other private ranges', '10.0.0.1', true],
    ['still refuses IPv6 loopback, not listed', '[::1]', true],
  ];
  for (const [name, host, refused] of cases) {
    it(`${name}: ${host}`, () => {
      if (refused) expect(local.checkHost(host)).toEqual(expect.any(String));
      else expect(local.checkHost(host)).toBeNull();
    });
  }

  it('takes IPv6 ranges', () => {
    expect(createAddressGuard({ allowedCidrs: ['::1/128'] }).checkHost('[::1]')).toBeNull();
  });

  it('rejects a malformed range with a message that names it', () => {
    expect(() => createAddressGuard({ allowedCidrs: ['127.0.0.0/33'] })).toThrow(/"127\.0\.0\.0\/33" is not a CIDR/);
    expect(() => createAddressGuard({ allowedCidrs: ['localhost'] })).toThrow(/"localhost" is not a CIDR/);
  });
});

/** Calls the guard's lookup the way net.connect does and settles with what it answered. */
function lookup(guard: ReturnType<typeof createAddressGuard>, hostname: string, all: boolean) {
  return new Promise<{ error: NodeJS.ErrnoException | null; address: unknown; family?: number }>((resolve) =>
    guard.lookup(hostname, { all }, (error, address, family) => resolve({ error, address, family })),
  );
}

const answering =
  (...answers: LookupAddress[][]): Resolve =>
  async () =>
    answers.shift() ?? [];

describe('lookup', () => {
  it('refuses a name when any of its addresses is refused, so a mixed answer cannot be used', async () => {
    const guard = createAddressGuard({
      allowedCidrs: [],
      resolve: answering([
        { address: '93.184.216.34', family: 4 },
        { address: '10.0.0.12', family: 4 },
      ]),
    });
    const { error } = await lookup(guard, 'hooks.example.com', true);
    expect(error).toBeInstanceOf(BlockedAddressError);
    expect(error).toMatchObject({
      code: 'EBLOCKEDADDRESS',
      message:
        'hooks.example.com resolves to a private address; deliveries go to public addresses only.',
    });
  });

  it('answers every address, or the first, as net.connect asks', async () => {
    const addresses: LookupAddress[] = [
      { address: '93.184.216.34', family: 4 },
      { address: '2606:2800:220:1::1', family: 6 },
    ];
    const guard = createAddressGuard({ allowedCidrs: [], resolve: answering([...addresses], [...addresses]) });
    expect(await lookup(guard, 'example.com', true)).toEqual({ error: null, address: addresses, family: undefined });
    expect(await lookup(guard, 'example.com', false)).toEqual({ error: null, address: '93.184.216.34', family: 4 });
  });

  it('passes resolver errors through unchanged', async () => {
    const notFound = Object.assign(new Error('getaddrinfo ENOTFOUND nowhere.test'), { code: 'ENOTFOUND' });
    const guard = createAddressGuard({ allowedCidrs: [], resolve: () => Promise.reject(notFound) });
    expect((await lookup(guard, 'nowhere.test', true)).error).toBe(notFound);
  });

  it('refuses localhost through the real resolver', async () => {
    const { error } = await lookup(strict, 'localhost', true);
    expect(error).toMatchObject({ code: 'EBLOCKEDADDRESS', message: expect.stringMatching(/^localhost resolves to/) });
  });
});
