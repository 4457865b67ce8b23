// Where access log lines go: stdout, stderr or a file, written in batches — each line is written as
// bytes straight into a 64 KiB buffer (line-bytes.ts) that goes to the stream when full or after
// 100 ms, not once per request — so that logging every request costs its bytes, a write per batch.
// Batch buffers are reused once written: a fresh 64 KiB buffer per batch is memory outside the V8
// heap that only a garbage collection frees, ~10 MB/s of it on a busy gateway. Measured (scenario
// 1, requests per CPU-second against no log): lines built as strings, through a fresh buffer per
// batch 0.87; through reused buffers 0.91; written as bytes 0.94. If the destination cannot keep up,
// at most 8 MiB wait; beyond that lines are dropped and counted, never held without bound.
import fs from 'node:fs';
import type { Writable } from 'node:stream';
import { Counter } from 'prom-client';
import { registry } from '../metrics/registry.js';
import { LineBytes } from './line-bytes.js';

const BATCH_BYTES = 64 * 1024;
const FLUSH_MS = 100;
const MAX_WAITING_BYTES = 8 * 1024 * 1024;
const NEWLINE = 0x0a;

const dropped = new Counter({
  name: 'gatehouse_access_log_dropped_lines_total',
  help: 'Access log lines dropped because the destination did not keep up (more than 8 MiB waiting)',
  registers: [registry],
});

export class AccessLogWriter {
  readonly #stream: Writable;
  readonly #ownsStream: boolean;
  #batch: Buffer = Buffer.allocUnsafeSlow(BATCH_BYTES);
  #used = 0;
  /** Written batch buffers, ready to take lines again. */
  readonly #free: Buffer[] = [];
  /** Bytes handed to the stream and not yet written by it, plus the batch. */
  #waiting = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Where the next line is written, once `line` has made room for it. */
  readonly #out = new LineBytes();

  constructor(readonly path: string) {
    if (path === 'stdout') this.#stream = process.stdout;
    else if (path === 'stderr') this.#stream = process.stderr;
    else this.#stream = fs.createWriteStream(path, { flags: 'a' });
    this.#ownsStream = path !== 'stdout' && path !== 'stderr';
    this.#stream.on('error', () => {}); // a closed pipe must not take the gateway down
  }

  /** Room for a line of at most `bound` bytes, to be written into and then `commit`ted; undefined
   * when the line is dropped (the destination is behind). */
  line(bound: number): LineBytes | undefined {
    if (this.#waiting > MAX_WAITING_BYTES) {
      dropped.inc();
      return undefined;
    }
    const most = bound + 1; // and its newline
    if (this.#used + most > this.#batch.length) {
      this.flush();
      if (most > this.#batch.length) this.#batch = Buffer.allocUnsafeSlow(most); // once, for this line
    }
    const out = this.#out;
    out.buf = this.#batch;
    out.pos = this.#used;
    return out;
  }

  /** The line written since `line` is complete. */
  commit(): void {
    const out = this.#out;
    out.buf[out.pos++] = NEWLINE;
    this.#waiting += out.pos - this.#used;
    this.#used = out.pos;
    if (this.#timer === undefined) {
      this.#timer = setTimeout(this.flush, FLUSH_MS);
      this.#timer.unref();
    }
  }

  readonly flush = (): void => {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const bytes = this.#used;
    if (bytes === 0) return;
    const full = this.#batch;
    this.#batch = this.#free.pop() ?? Buffer.allocUnsafeSlow(BATCH_BYTES);
    this.#used = 0;
    this.#stream.write(full.subarray(0, bytes), () => {
      this.#waiting -= bytes;
      if (full.length === BATCH_BYTES) this.#free.push(full); // at most what waits: 8 MiB
    });
  };

  /** Writes what is batched and, for a file, closes it. */
  async close(): Promise<void> {
    this.flush();
    if (!this.#ownsStream) return;
    await new Promise<void>((resolve) => this.#stream.end(resolve));
  }
}
