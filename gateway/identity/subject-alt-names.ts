// Parses Node's `subjectAltName` string ("URI:spiffe://x/y, DNS:a.example, IP Address:1.2.3.4").
// Node quotes entries that contain a comma or quote as JSON strings (since the 2022 SAN fix), so a
// naive split(', ') would let a crafted SAN forge a second entry; this parser honours the quoting.

export interface SubjectAltNames {
  readonly uris: readonly string[];
  readonly dns: readonly string[];
  readonly ips: readonly string[];
}

export function parseSubjectAltNames(text: string | undefined): SubjectAltNames {
  const uris: string[] = [];
  const dns: string[] = [];
  const ips: string[] = [];
  if (!text) return { uris, dns, ips };
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon === -1) break;
    const type = text.slice(i, colon);
    let value: string;
    let next: number;
    if (text[colon + 1] === '"') {
      // JSON-quoted value: find the closing quote that is not escaped.
      let end = colon + 2;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      value = JSON.parse(text.slice(colon + 1, end + 1)) as string;
      next = end + 1;
    } else {
      const comma = text.indexOf(', ', colon + 1);
      next = comma === -1 ? text.length : comma;
      value = text.slice(colon + 1, next);
    }
    if (type === 'URI') uris.push(value);
    else if (type === 'DNS') dns.push(value);
    else if (type === 'IP Address') ips.push(value);
    i = next;
    if (text.startsWith(', ', i)) i += 2;
  }
  return { uris, dns, ips };
}
