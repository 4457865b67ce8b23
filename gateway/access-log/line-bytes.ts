// JSON pieces written as bytes straight into a buffer, for access log lines: no string is built for
// a line, none flattened, none encoded again. Building a line as a string and encoding it into the
// batch cost about as much as the rest of the log together (scenario 1, per CPU-second: 0.93-0.96
// with the string built and not written, 0.91 written). The caller reserves room first
// (access-line.ts `accessLineBound`, from `LineBytes.bound`); nothing here checks the end of the buffer.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const ZERO = 0x30;

export class LineBytes {
  buf: Buffer = Buffer.alloc(0);
  pos = 0;

  /** Most bytes a JSON string of `value` takes: 6 per UTF-16 unit (`\u001f`), and its quotes. */
  static bound(value: string | undefined): number {
    return value === undefined ? 0 : value.length * 6 + 2;
  }

  /** Text already in JSON form (keys, punctuation, a rendered part of a line), as UTF-8. */
  raw(text: string): void {
    const buf = this.buf;
    let pos = this.pos;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c > 0x7f) {
        this.pos = pos + buf.write(text.slice(i), pos);
        return;
      }
      buf[pos++] = c;
    }
    this.pos = pos;
  }

  /** A JSON string: printable ASCII without '"' or '\' as it is, anything else through JSON.stringify. */
  string(value: string): void {
    const buf = this.buf;
    const start = this.pos;
    let pos = start;
    buf[pos++] = QUOTE;
    for (let i = 0; i < value.length; i++) {
      const c = value.charCodeAt(i);
      if (c < 0x20 || c > 0x7e || c === QUOTE || c === BACKSLASH) {
        this.pos = start + buf.write(JSON.stringify(value), start);
        return;
      }
      buf[pos++] = c;
    }
    buf[pos++] = QUOTE;
    this.pos = pos;
  }

  /** `key` (`,"name":`) and the JSON string `value`; nothing when `value` is undefined. */
  stringField(key: string, value: string | undefined): void {
    if (value === undefined) return;
    this.raw(key);
    this.string(value);
  }

  /** `key` and the integer `value`; nothing when it is undefined. */
  intField(key: string, value: number | undefined): void {
    if (value === undefined) return;
    this.raw(key);
    this.int(value);
  }

  /** `key` and `value` milliseconds (`millis`); nothing when it is undefined. */
  millisField(key: string, value: number | undefined): void {
    if (value === undefined) return;
    this.raw(key);
    this.millis(value);
  }

  /** A non-negative integer (counts, statuses, byte totals). */
  int(n: number): void {
    const buf = this.buf;
    let digits = 1;
    for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) digits++;
    let pos = this.pos + digits;
    this.pos = pos;
    let rest = n;
    do {
      buf[--pos] = ZERO + (rest % 10);
      rest = Math.floor(rest / 10);
    } while (rest > 0);
  }

  /** Milliseconds with three decimals (microseconds), as a JSON number; below zero (a wall clock
   * stepped back) as 0. */
  millis(ms: number): void {
    const micros = ms > 0 ? Math.round(ms * 1000) : 0;
    const whole = Math.floor(micros / 1000);
    this.int(whole);
    this.fraction(micros - whole * 1000);
  }

  /** '.' and three digits: `thousandths` is 0-999. */
  fraction(thousandths: number): void {
    const buf = this.buf;
    const pos = this.pos;
    buf[pos] = 0x2e;
    buf[pos + 1] = ZERO + Math.floor(thousandths / 100);
    buf[pos + 2] = ZERO + (Math.floor(thousandths / 10) % 10);
    buf[pos + 3] = ZERO + (thousandths % 10);
    this.pos = pos + 4;
  }
}
