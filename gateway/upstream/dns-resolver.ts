// How a host-name endpoint's addresses are found: the system's resolver (getaddrinfo, as every
// connect does: /etc/hosts, then DNS), or, with upstreams[].dns_resolvers, those DNS servers
// asked directly for A and AAAA records. IPv4 addresses when there are any, else IPv6 (Envoy's
// V4_PREFERRED): a name with both, like localhost, is rarely served on both.
import dns from 'node:dns';
import type { Address } from '../config/types.js';
import { formatAddress } from '../config/config-values.js';

export type ResolveAddresses = (host: string) => Promise<string[]>;

export function dnsResolver(servers: readonly Address[] | undefined): ResolveAddresses {
  if (servers === undefined || servers.length === 0) {
    return async (host) => {
      const found = await dns.promises.lookup(host, { all: true });
      const v4 = found.filter((a) => a.family === 4);
      return (v4.length > 0 ? v4 : found).map((a) => a.address);
    };
  }
  const resolver = new dns.promises.Resolver({ timeout: 2000, tries: 2 });
  resolver.setServers(servers.map(formatAddress));
  return async (host) => {
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)]);
    const v4found = v4.status === 'fulfilled' ? v4.value : [];
    const addresses = v4found.length > 0 ? v4found : v6.status === 'fulfilled' ? v6.value : [];
    if (addresses.length === 0) throw v4.status === 'rejected' ? v4.reason : new Error(`${host} has no A or AAAA record`);
    return addresses;
  };
}
