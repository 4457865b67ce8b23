// Session ticket keys across a handover (SIGUSR2, handover.ts): the running generation writes its
// current key and the key's age as one line on the ready pipe it starts the next one with
// (../net/inherited-sockets.ts). The next generation then goes on sealing and opening tickets with
// that key, so a client's ticket from before the restart resumes after it, and rotates it when the
// generation before would have. Only on that pipe: the command line is readable by every local
// user in /proc, and the environment is passed on to every process started after.
//
// The next generation's own configuration decides: tickets disabled, or a key_file (the file wins),
// and the line is not even read. A line that cannot be read leaves it on fresh keys, with a warning:
// clients then make one full handshake, as before handovers passed keys. Neither the line nor any
// part of it is ever logged.
import type { SessionTickets } from '../config/types.js';
import { log } from '../log.js';
import { readHanded } from '../net/inherited-sockets.js';
import { parseTicketKey, type AgedTicketKey } from './ticket-keys.js';

/** The generation before writes at once as it starts this one: this is only for a pipe nobody writes on. */
const HANDED_TIMEOUT_MS = 5_000;

interface TicketKeysLine {
  ticket_key: string;
  age_ms: number;
}

/** The line to hand `key` over with; undefined (nothing handed over) with tickets disabled. */
export function ticketKeysLine(key: AgedTicketKey | undefined): string | undefined {
  if (key === undefined) return undefined;
  return JSON.stringify({ ticket_key: key.key.toString('hex'), age_ms: key.ageMs } satisfies TicketKeysLine);
}

export type TicketKeysLineParse = { readonly ok: true; readonly key: AgedTicketKey } | { readonly ok: false; readonly problem: string };

export function parseTicketKeysLine(line: string): TicketKeysLineParse {
  let value: Partial<TicketKeysLine>;
  try {
    value = JSON.parse(line) as Partial<TicketKeysLine>;
  } catch {
    return { ok: false, problem: 'not JSON' }; // JSON.parse's message would quote the line
  }
  if (typeof value !== 'object' || value === null) return { ok: false, problem: 'not a JSON object' };
  const { ticket_key: hex, age_ms: ageMs } = value;
  if (typeof hex !== 'string') return { ok: false, problem: 'ticket_key: not a string' };
  const key = parseTicketKey(hex);
  if (!key.ok) return { ok: false, problem: `ticket_key: ${key.problem}` };
  if (typeof ageMs !== 'number' || !Number.isSafeInteger(ageMs) || ageMs < 0) return { ok: false, problem: 'age_ms: not a whole number of milliseconds' };
  return { ok: true, key: { key: key.key, ageMs } };
}

/**
 * The key the generation before handed over, if this process is the next generation of a handover
 * and its `config` (this process's) takes one; undefined otherwise. Never fails: a problem is logged.
 */
export async function receiveTicketKeys(config: Pick<SessionTickets, 'enabled' | 'keyFile'>): Promise<AgedTicketKey | undefined> {
  if (!config.enabled || config.keyFile !== undefined) return undefined;
  const reading = readHanded(HANDED_TIMEOUT_MS);
  if (reading === undefined) return undefined; // not a handover, or from a gatehouse that hands no keys over
  const read = await reading;
  const parsed = read.ok ? parseTicketKeysLine(read.line) : read;
  if (!parsed.ok) {
    log.warn('ticket_keys_not_handed_over', { pid: process.pid, problem: parsed.problem, note: 'fresh ticket keys: tickets issued before the restart fall back to a full handshake' });
    return undefined;
  }
  log.info('ticket_keys_handed_over', { pid: process.pid, age_ms: parsed.key.ageMs });
  return parsed.key;
}
