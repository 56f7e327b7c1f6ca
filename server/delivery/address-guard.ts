// Decides which addresses a delivery may connect to, so a callback URL cannot reach the service's own network
// (SSRF): only plain public unicast, plus the ranges an operator allows on purpose (a local receiver in dev/tests).
import dns from 'node:dns';
import type { LookupAddress, LookupAllOptions } from 'node:dns';
import type { LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

type Address = ipaddr.IPv4 | ipaddr.IPv6;
type Cidr = [Address, number];

/** Resolves every address of a name, like dns.lookup with `all: true`. */
export type Resolve = (hostname: string, options: LookupAllOptions) => Promise<LookupAddress[]>;


export interface AddressGuardOptions {
  /** CIDR ranges allowed although they are not public unicast, e.g. `127.0.0.0/8` for a local receiver. */
  allowedCidrs: string[];
  // Injectable only so a test can simulate DNS rebinding: no real DNS server here can change its answers.
  resolve?: Resolve;
}

export interface AddressGuard {
  /** Null when a delivery may connect to this IP address, else why not ("127.0.0.1 is a loopback address"). */
  checkAddress(ip: string): string | null;
  /** Null when a callback host is acceptable before any DNS (names are resolved at delivery), else why not. */
  checkHost(hostname: string): string | null;
  /** A `net.LookupFunction` that fails with BlockedAddressError when any resolved address is refused. */
  lookup: LookupFunction;
}

/** Raised when a delivery would connect to a refused address; `code` lets it travel like a system error. */
export class BlockedAddressError extends Error {
  readonly code = 'EBLOCKEDADDRESS';
  constructor(
    message: string,
    readonly hostname: string,
    readonly address: string,
  ) {
    super(message);
    this.name = 'BlockedAddressError';
  }
}

// ipaddr.js calls these "unicast" although they reach IPv4 (often the loopback) through the IPv6 stack.
const extraBlocked: Array<[Cidr, string]> = [[ipaddr.parseCIDR('::/96'), 'an IPv4-compatible IPv6 address']];

const rangeNames: Record<string, string> = {
  unspecified: 'an unspecified address',
  broadcast: 'the broadcast address',
  multicast: 'a multicast address',
  linkLocal: 'a link-local address',
  loopback: 'a loopback address',
  carrierGradeNat: 'a carrier-grade NAT address',
  private: 'a private address',
  reserved: 'a reserved or documentation address',
  uniqueLocal: 'a unique local address',
  deprecatedSiteLocal: 'a site-local address',
  benchmarking: 'a benchmarking address',
  discard: 'a discard-only address',
  // Tunnelled and translated forms embed an IPv4 address that may be internal; none is a plain public address.
  '6to4': 'a 6to4 address',
  teredo: 'a Teredo address',
  rfc6052: 'a NAT64 address',
  rfc6145: 'an IPv4-translated address',
};

const describeRange = (range: string) => rangeNames[range] ?? `an address in the special-purpose range "${range}"`;

/** The sentence tail a delivery outcome uses after naming the address. */
export const publicOnly = 'deliveries go to public addresses only.';

function parseCidrs(cidrs: string[]): Cidr[] {
  return cidrs.map((cidr) => {
    try {
      return ipaddr.parseCIDR(cidr.trim());
    } catch {
      throw new Error(`allowedCidrs: "${cidr}" is not a CIDR range like 127.0.0.0/8 or ::1/128`);
    }
  });
}

const inside = (address: Address, [base, bits]: Cidr) =>
  address.kind() === base.kind() && address.match(base, bits);

/** Why an address is refused, as "a loopback address" (naming the IPv4 inside a mapped one), or null. */
function classify(ip: string, allowed: Cidr[]): string | null {
  let parsed: Address;
  try {
    parsed = ipaddr.parse(ip);
  } catch {
    return 'not an IP address';
  }
  // ::ffff:127.0.0.1 is 127.0.0.1 on the wire: judge (and allow) the IPv4 address it carries.
  const address = parsed instanceof ipaddr.IPv6 && parsed.isIPv4MappedAddress() ? parsed.toIPv4Address() : parsed;
  const mapped = address !== parsed;
  if (allowed.some((cidr) => inside(address, cidr) || inside(parsed, cidr))) return null;
  const range = address.range();
  const refusal =
    range === 'unicast' ? (extraBlocked.find(([cidr]) => inside(address, cidr))?.[1] ?? null) : describeRange(range);
  return refusal && mapped ? `${refusal} (${address.toString()})` : refusal;
}

/** The normalised host of a URL whose host is `hostname`, or null when `hostname` is not just a host. */
function normaliseHost(hostname: string): string | null {
  const host = hostname.includes(':') && !hostname.startsWith('[') ? `[${hostname}]` : hostname;
  let url: URL;
  try {
    // WHATWG URL turns every inet_aton spelling (2130706433, 0x7f.1, 127.1, 0177.0.0.1) into dotted decimal.
    url = new URL(`http://${host}/`);
  } catch {
    return null;
  }
  const onlyHost = !url.username && !url.password && !url.port && url.pathname === '/' && !url.search && !url.hash;
  return onlyHost && url.hostname ? url.hostname : null;
}

const isLocalhostName = (name: string) => {
  const bare = name.endsWith('.') ? name.slice(0, -1) : name;
  return bare === 'localhost' || bare.endsWith('.localhost');
};

export function createAddressGuard(options: AddressGuardOptions): AddressGuard {
  const allowed = parseCidrs(options.allowedCidrs);
  const resolve: Resolve =
    options.resolve ?? ((hostname, lookupOptions) => dns.promises.lookup(hostname, lookupOptions));

  const checkAddress = (ip: string): string | null => {
    const refusal = classify(ip, allowed);
    return refusal && `${ip} is ${refusal}`;
  };

  const checkHost = (hostname: string): string | null => {
    const host = normaliseHost(hostname);
    if (host === null) return `"${hostname}" is not a valid host name`;
    if (host.startsWith('[')) return checkAddress(host.slice(1, -1));
    // ipaddr.js validates by throwing and catching, ~20 µs a call; a name with a letter past the last dot is no
    // IPv4 address (WHATWG URL has already turned every numeric spelling into a dotted quad), so skip it.
    if (/^[0-9.]+$/.test(host) && ipaddr.IPv4.isValidFourPartDecimal(host)) return checkAddress(host);
    // RFC 6761: localhost names never leave the machine, whatever DNS says; judge them as the loopback addresses.
    if (isLocalhostName(host)) {
      const loopbackAllowed = ['127.0.0.1', '::1'].some((ip) => classify(ip, allowed) === null);
      return loopbackAllowed ? null : `${hostname} is a loopback name`;
    }
    return null;
  };

  const lookup: LookupFunction = (hostname, lookupOptions, callback) => {
    resolve(hostname, { ...lookupOptions, all: true }).then(
      (addresses) => {
        // Refuse when any answer is refused, so a mixed answer cannot smuggle an internal address in.
        for (const { address } of addresses) {
          const refusal = classify(address, allowed);
          if (refusal) {
            // The address itself stays out of the text tenants see: it would map internal names to internal IPs.
            const message = `${hostname} resolves to ${refusal}; ${publicOnly}`;
            callback(new BlockedAddressError(message, hostname, address), '');
            return;
          }
        }
        const first = addresses[0];
        if (!first) callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '');
        else if (lookupOptions.all) callback(null, addresses);
        else callback(null, first.address, first.family);
      },
      (error: NodeJS.ErrnoException) => callback(error, ''),
    );
  };

  return { checkAddress, checkHost, lookup };
}
