// Content-Length, found and read the same way wherever a message's framing depends on it.
import { equalsFolded } from './header-name-table.js';

export function isContentLength(name: string): boolean {
  return equalsFolded(name, 'content-length');
}

/**
 * The byte count a Content-Length value announces. llhttp (strict) has refused anything but
 * digits, a second differing value, and one beside Transfer-Encoding; beyond 2^53 it is not exact.
 */
export function parseContentLength(value: string): number {
  return Number(value);
}

/** The length the first Content-Length in a flat [name, value, …] list announces, or -1 without one. */
export function contentLength(headers: readonly string[]): number {
  for (let i = 0; i < headers.length; i += 2) if (isContentLength(headers[i]!)) return parseContentLength(headers[i + 1]!);
  return -1;
}
