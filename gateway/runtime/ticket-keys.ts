// Session ticket keys: the one 48-byte key set (16 name, 16 HMAC, 16 AES) every worker and, through
// `session_tickets.key_file`, every replica encrypts tickets with, so a ticket issued by one
// resumes on any other. Without a key file the primary generates a key and replaces it every
// `session_tickets.rotate`; with one, whoever writes the file rotates it and we follow its changes.
//
// Node's setTicketKeys holds exactly one key set, so a rotation invalidates the tickets issued
// before it: those clients fall back to a full handshake (not an error). Key material is never logged.
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

export interface TicketKeySourceOptions {
  /** File watcher timings (tests shorten them). */
  debounceMs?: number;
  pollMs?: number;
}

/** The current key and its changes: generated and rotated, or read from the key file and followed. */
export class TicketKeySource {
  #key: Buffer;
  #generation = 0;
  readonly #listeners = new Set<(key: Buffer) => void>();
  readonly #timer: NodeJS.Timeout | undefined;
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
      this.#key = randomBytes(TICKET_KEY_BYTES);
      if (config.enabled && config.rotateMs > 0) {
        this.#timer = setInterval(() => this.#set(randomBytes(TICKET_KEY_BYTES), 'rotated'), config.rotateMs);
        this.#timer.unref();
      }
    }
  }

  get current(): Buffer {
    return this.#key;
  }

  /** Counts changes since start (logged instead of the key). */
  get generation(): number {
    return this.#generation;
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
    this.#generation++;
    log.info('ticket_keys_changed', { why, generation: this.#generation, note: 'tickets issued before now fall back to a full handshake' });
    for (const listener of this.#listeners) listener(key);
  }

  close(): void {
    clearInterval(this.#timer);
    this.#watcher?.close();
    this.#listeners.clear();
  }
}
