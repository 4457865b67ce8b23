// Splits PEM text into its blocks of one label. Chain files, trust bundles and CRL files hold
// several blocks, and most parsers (node:crypto's X509Certificate, Node's `crl` TLS option given
// a string) read only the first one.

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[\s\S]*?-----END \1-----/g;

/** Every block with `label` ("CERTIFICATE", "X509 CRL"), each ending in a newline, in file order. */
export function pemBlocks(text: string, label: string): string[] {
  const blocks: string[] = [];
  for (const match of text.matchAll(BLOCK)) {
    if (match[1] === label) blocks.push(match[0] + '\n');
  }
  return blocks;
}
