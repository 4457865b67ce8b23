// Host patterns shared by routes and certificates: exact names and `*.suffix` wildcards, where the
// wildcard stands for exactly one leading label (as in certificates).

/** The lookup key of `host` for wildcard patterns: ".example.com" for "api.example.com". */
export function wildcardKey(host: string): string | undefined {
  const dot = host.indexOf('.');
  return dot > 0 ? host.slice(dot) : undefined;
}

/** Lowercase, without a port and without IPv6 brackets: the form SNI and routes compare. */
export function normalizeHost(hostHeader: string): string {
  let host = hostHeader;
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    host = end === -1 ? host : host.slice(1, end);
  } else {
    const colon = host.lastIndexOf(':');
    if (colon !== -1) host = host.slice(0, colon);
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host.toLowerCase();
}
