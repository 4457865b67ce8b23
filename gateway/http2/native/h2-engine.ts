// The native HTTP/2 engine (h2-engine.c documents each call), typed; the numbers its events and
// counters use; and the memory it shares with JavaScript (events in, output out), one per process
// (per worker). Undefined when the addon was not built (no C compiler).
import { Buffer } from 'node:buffer';
import { H2_ENGINE_ADDON, loadAddon } from '../../native/native-addons.js';

/** A session handle: only the engine's calls look inside. */
export type EngineSession = { readonly __brand: 'h2-engine session' };

export interface H2EngineAddon {
  init(events: Int32Array, output: Buffer): void;
  createServer(settings: readonly number[]): EngineSession;
  createClient(settings: readonly number[]): EngineSession;
  /** A client's new stream: its id, or a negative nghttp2 error. */
  request(session: EngineSession, headers: readonly string[], body: Uint8Array | undefined, endStream: boolean): number;
  receive(session: EngineSession, bytes: Uint8Array): string | undefined;
  takeEvents(session: EngineSession): number;
  consume(session: EngineSession, streamId: number, bytes: number): number;
  informational(session: EngineSession, streamId: number, headers: readonly string[]): number;
  respond(session: EngineSession, streamId: number, headers: readonly string[], body: Uint8Array | undefined, endStream: boolean): number;
  sendData(session: EngineSession, streamId: number, bytes: Uint8Array, endStream: boolean): number;
  sendTrailers(session: EngineSession, streamId: number, trailers: readonly string[]): number;
  reset(session: EngineSession, streamId: number, code: number): number;
  goaway(session: EngineSession, code: number): number;
  pending(session: EngineSession): number;
  counters(session: EngineSession, into: Float64Array): void;
  destroy(session: EngineSession): void;
}

/** h2-engine.c's enum event_kind. */
export const EVENT = { HEADERS: 1, DATA: 2, END_STREAM: 3, CLOSE: 4, GOAWAY: 5, ERROR: 6, WRITABLE: 7, SETTINGS: 8 } as const;
/** EV_HEADERS flags. */
export const HEADERS_FLAG = { END_STREAM: 1, TRAILERS: 2, TOO_LARGE: 4, GRPC: 8, INFORMATIONAL: 16 } as const;
/** counters() order (h2-engine.c's enum counter). */
export const COUNTER = { SETTINGS: 0, PINGS: 1, RESETS: 2, HEADER_BLOCKS: 3, EMPTY_DATA: 4, INVALID: 5, COUNT: 6 } as const;
/** h2-engine.c's SEND_HIGH_WATER: respond()/sendData() returning this or more means wait for WRITABLE. */
export const SEND_HIGH_WATER_BYTES = 64 * 1024;
/** nghttp2's error codes (nghttp2.h) the gateway tells apart. */
export const NGHTTP2_ERR = { FLOODED: -904, TOO_MANY_CONTINUATIONS: -905, BAD_CLIENT_MAGIC: -903 } as const;
/** SETTINGS parameter ids (RFC 9113 6.5.2). */
export const SETTING = { HEADER_TABLE_SIZE: 1, ENABLE_PUSH: 2, MAX_CONCURRENT_STREAMS: 3, INITIAL_WINDOW_SIZE: 4, MAX_FRAME_SIZE: 5, MAX_HEADER_LIST_SIZE: 6 } as const;

/** The header fields of the HEADERS event at `i` ([HEADERS, id, flags, count, (start, nameLength, valueLength) * count]), as [name, value, …]. */
/** Where the event after the one at `i` begins (h2-engine.c, enum event_kind: HEADERS carries its fields, DATA an offset and length, the others one value). */
export function nextEvent(events: Int32Array, i: number): number {
  const kind = events[i]!;
  if (kind === EVENT.HEADERS) return i + 4 + 3 * events[i + 3]!;
  return kind === EVENT.DATA ? i + 4 : i + 3;
}

export function headerFields(events: Int32Array, i: number, text: string): string[] {
  const count = events[i + 3]!;
  const fields = new Array<string>(2 * count);
  for (let f = 0, at = i + 4; f < count; f++, at += 3) {
    const start = events[at]!;
    const valueStart = start + events[at + 1]!;
    fields[2 * f] = text.slice(start, valueStart);
    fields[2 * f + 1] = text.slice(valueStart, valueStart + events[at + 2]!);
  }
  return fields;
}

/** Where receive() puts events ([count, ...]) at first: grown when a read brings more. */
const FIRST_EVENT_CAPACITY = 16 * 1024;
/** What one pending() call can return: more waits for the next call. Above a frame (16 KiB). */
const OUTPUT_BYTES = 128 * 1024;

/** The addon and the memory it shares with this process's JavaScript. */
export class H2Engine {
  #events = new Int32Array(FIRST_EVENT_CAPACITY);
  readonly output = Buffer.allocUnsafeSlow(OUTPUT_BYTES);

  constructor(readonly addon: H2EngineAddon) {
    addon.init(this.#events, this.output);
  }

  /** What the last receive() brought: events[0] is their count (h2-engine.c, enum event_kind). */
  get events(): Int32Array {
    return this.#events;
  }

  /** Feeds a read to `session`; returns the string the events' header fields are slices of. */
  receive(session: EngineSession, bytes: Uint8Array): string | undefined {
    const text = this.addon.receive(session, bytes);
    if (this.#events[0]! < 0) this.#grow(session);
    return text;
  }

  /** The events pending() produced (closes, WRITABLE) into `events`; returns their count. */
  takeEvents(session: EngineSession): number {
    if (this.addon.takeEvents(session) < 0) this.#grow(session);
    return this.#events[0]!;
  }

  #grow(session: EngineSession): void {
    let capacity = this.#events.length;
    while (capacity < 1 - this.#events[0]!) capacity *= 2;
    this.#events = new Int32Array(capacity);
    this.addon.init(this.#events, this.output);
    this.addon.takeEvents(session);
  }
}

const addon = loadAddon<H2EngineAddon>(H2_ENGINE_ADDON);
export const h2Engine: H2Engine | undefined = addon && new H2Engine(addon);
