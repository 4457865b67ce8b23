// SPIFFE ID syntax (SPIFFE spec, "SPIFFE-ID"): spiffe://<trust domain>/<path>, the trust domain
// lowercase letters, digits, '.', '-', '_'; path segments non-empty, not '.' or '..', made of
// letters, digits and '.-_'; no query, fragment, port or userinfo.

const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;

export type SpiffeIdCheck = { ok: true; trustDomain: string; path: string } | { ok: false; problem: string };

export function checkSpiffeId(id: string): SpiffeIdCheck {
  if (!id.startsWith('spiffe://')) return { ok: false, problem: 'must start with spiffe://' };
  const rest = id.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  if (trustDomain.length === 0) return { ok: false, problem: 'trust domain is empty' };
  if (!TRUST_DOMAIN.test(trustDomain)) {
    return { ok: false, problem: `trust domain '${trustDomain}' may only hold lowercase letters, digits, '.', '-' and '_'` };
  }
  if (path !== '') {
    for (const segment of path.slice(1).split('/')) {
      if (segment === '') return { ok: false, problem: 'path has an empty segment (double or trailing slash)' };
      if (segment === '.' || segment === '..') return { ok: false, problem: `path segment '${segment}' is not allowed` };
      if (!SEGMENT.test(segment)) return { ok: false, problem: `path segment '${segment}' may only hold letters, digits, '.', '-' and '_'` };
    }
  }
  return { ok: true, trustDomain, path };
}

export function trustDomainOf(id: string): string | undefined {
  const check = checkSpiffeId(id);
  return check.ok ? check.trustDomain : undefined;
}
