// Where access log lines go: stdout, stderr or a file, written in batches — lines are joined and
// handed to the stream once per 64 KiB or 100 ms, not once per request — so that logging every
// request costs a string per request and a write per batch. If the destination cannot keep up,
// at most 8 MiB wait; beyond that lines are dropped and counted, never held without bound.
import fs from 'node:fs';
import type { Writable } from 'node:stream';
import { Counter } from 'prom-client';
import { registry } from '../metrics/registry.js';

const BATCH_BYTES = 64 * 1024;
const FLUSH_MS = 100;
const MAX_WAITING_BYTES = 8 * 1024 * 1024;

const dropped = new Counter({
  name: 'gatehouse_access_log_dropped_lines_total',
  help: 'Access log lines dropped because the destination did not keep up (more than 8 MiB waiting)',
  registers: [registry],
});

export class AccessLogWriter {
  readonly #out: Writable;
  readonly #ownsStream: boolean;
  #batch = '';
  /** Bytes handed to the stream and not yet written by it, plus the batch. */
  #waiting = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(readonly path: string) {
    if (path === 'stdout') this.#out = process.stdout;
    else if (path === 'stderr') this.#out = process.stderr;
    else this.#out = fs.createWriteStream(path, { flags: 'a' });
    this.#ownsStream = path !== 'stdout' && path !== 'stderr';
    this.#out.on('error', () => {}); // a closed pipe must not take the gateway down
  }

  /** One line (without its newline). */
  write(line: string): void {
    if (this.#waiting > MAX_WAITING_BYTES) {
      dropped.inc();
      return;
    }
    this.#batch += line + '\n';
    this.#waiting += line.length + 1;
    if (this.#batch.length >= BATCH_BYTES) this.flush();
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(this.flush, FLUSH_MS);
      this.#timer.unref();
    }
  }

  readonly flush = (): void => {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = this.#batch;
    if (batch === '') return;
    this.#batch = '';
    const bytes = batch.length;
    this.#out.write(batch, () => (this.#waiting -= bytes));
  };

  /** Writes what is batched and, for a file, closes it. */
  async close(): Promise<void> {
    this.flush();
    if (!this.#ownsStream) return;
    await new Promise<void>((resolve) => this.#out.end(resolve));
  }
}
