// Session ticket keys: the one 48-byte key set (16 name, 16 HMAC, 16 AES) every worker and, through
// `session_tickets.key_file`, every replica encrypts tickets with, so a ticket issued by one
// resumes on any other. Without a key file the primary generates a key and replaces it every
// `session_tickets.rotate`; with one, whoever writes the file rotates it and we follow its changes.
//
// Node's setTicketKeys holds exactly one key set, so a rotation invalidates the tickets issued
// before it: those clients fall back to a full handshake (not an error). Key material is never logged.
//
// A handover (SIGUSR2, handover.ts) gives the next generation the current key and its age: without
// a key file it goes on with that key, and rotates it when this process would have.
//
// Key file format: one line holding the 48 bytes as 96 hex digits or as base64 (64 characters);
// surrounding whitespace and a trailing newline are ignored. `openssl rand -hex 48 > ticket.key`.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import type { SessionTickets } from '../config/types.js';
import { FileWatcher } from '../lifecycle/file-watcher.js';
import { log } from '../log.js';

export const TICKET_KEY_BYTES = 48;

export type TicketKeyParse = { ok: true; key: Buffer } | { ok: false; problem: string };

export function parseTicketKey(text: string): TicketKeyParse {
  const line = text.trim();
  if (line.includes('\n')) return { ok: false, problem: 'expected one line (96 hex digits or base64 of 48 bytes)' };
  let key: Buffer | undefined;
  if (/^[0-9a-fA-F]+$/.test(line)) {
    if (line.length !== TICKET_KEY_BYTES * 2) return { ok: false, problem: `hex key has ${line.length} digits, expected ${TICKET_KEY_BYTES * 2}` };
    key = Buffer.from(line, 'hex');
  } else if (/^[A-Za-z0-9+/]+={0,2}$/.test(line)) {
    key = Buffer.from(line, 'base64');
  } else {
    return { ok: false, problem: line === '' ? 'file is empty' : 'not hex or base64 (expected one line: 96 hex digits or base64 of 48 bytes)' };
  }
  if (key.length !== TICKET_KEY_BYTES) return { ok: false, problem: `key is ${key.length} bytes, expected ${TICKET_KEY_BYTES}` };
  return { ok: true, key };
}

export function readTicketKeyFile(file: string): TicketKeyParse {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    return { ok: false, problem: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
  return parseTicketKey(text);
}

/** A key in use elsewhere (the generation before a handover) and how long it has been in use there. */
export interface AgedTicketKey {
  readonly key: Buffer;
  readonly ageMs: number;
}

export interface TicketKeySourceOptions {
  /** File watcher timings (tests shorten them). */
  debounceMs?: number;
  pollMs?: number;
  /** The generation before's key: used instead of a fresh one unless a key file is configured (the file wins). */
  handed?: AgedTicketKey;
}

/** The current key and its changes: generated and rotated, or read from the key file and followed. */
export class TicketKeySource {
  #key: Buffer;
  /** When the current key came into use (performance.now(), here or in the generation before). */
  #since = performance.now();
  #generation = 0;
  readonly #listeners = new Set<(key: Buffer) => void>();
  #timer: NodeJS.Timeout | undefined;
  readonly #watcher: FileWatcher | undefined;

  /** Throws with `session_tickets.key_file: FILE: problem` when the key file is unusable at start. */
  constructor(
    private readonly config: Pick<SessionTickets, 'enabled' | 'keyFile' | 'rotateMs'>,
    options: TicketKeySourceOptions = {},
  ) {
    const file = config.keyFile;
    if (file !== undefined && config.enabled) {
      const read = readTicketKeyFile(file);
      if (!read.ok) throw new Error(`session_tickets.key_file: ${file}: ${read.problem}`);
      this.#key = read.key;
      this.#watcher = new FileWatcher([file], () => this.#reloadFile(file), { debounceMs: options.debounceMs ?? 150, pollMs: options.pollMs ?? 10_000 });
    } else {
      const handed = config.enabled ? options.handed : undefined;
      this.#key = handed?.key ?? randomBytes(TICKET_KEY_BYTES);
      if (handed) this.#since -= handed.ageMs;
      if (config.enabled && config.rotateMs > 0) this.#rotateIn(config.rotateMs - (handed?.ageMs ?? 0));
    }
  }

  #rotateIn(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#set(randomBytes(TICKET_KEY_BYTES), 'rotated');
      if (this.#timer !== undefined) this.#rotateIn(this.config.rotateMs); // unless a listener closed this source
    }, Math.max(0, ms));
    this.#timer.unref();
  }

  get current(): Buffer {
    return this.#key;
  }

  /** Counts changes since start (logged instead of the key). */
  get generation(): number {
    return this.#generation;
  }

  /** What the next generation of a handover needs to go on with this key; undefined with tickets disabled. */
  handOver(): AgedTicketKey | undefined {
    return this.config.enabled ? { key: this.#key, ageMs: Math.round(performance.now() - this.#since) } : undefined;
  }

  onChange(listener: (key: Buffer) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #reloadFile(file: string): void {
    const read = readTicketKeyFile(file);
    if (!read.ok) {
      log.warn('ticket_key_reload_failed', { file, problem: read.problem, note: 'the previous key stays in use' });
      return;
    }
    if (read.key.equals(this.#key)) return;
    this.#set(read.key, 'key_file_changed');
  }

  #set(key: Buffer, why: string): void {
    this.#key = key;
    this.#since = performance.now();
    this.#generation++;
    log.info('ticket_keys_changed', { why, generation: this.#generation, note: 'tickets issued before now fall back to a full handshake' });
    for (const listener of this.#listeners) listener(key);
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#watcher?.close();
    this.#listeners.clear();
  }
}
