// The native HTTP/2 engine (h2-engine.c documents each call), typed, and the numbers its events
// and counters use. Undefined when the addon was not built (no C compiler or no libnghttp2-dev).
import { H2_ENGINE_ADDON, loadAddon } from '../../native/native-addons.js';

/** A session handle: only the engine's calls look inside. */
export type EngineSession = { readonly __brand: 'h2-engine session' };

export interface H2Engine {
  createServer(settings: readonly number[]): EngineSession;
  receive(session: EngineSession, bytes: Uint8Array): unknown[];
  respond(session: EngineSession, streamId: number, headers: readonly string[], body: Uint8Array | undefined, endStream: boolean): number;
  sendData(session: EngineSession, streamId: number, bytes: Uint8Array, endStream: boolean): number;
  sendTrailers(session: EngineSession, streamId: number, trailers: readonly string[]): number;
  reset(session: EngineSession, streamId: number, code: number): number;
  goaway(session: EngineSession, code: number): number;
  pending(session: EngineSession): Buffer | undefined | null;
  counters(session: EngineSession, into: Float64Array): void;
  destroy(session: EngineSession): void;
}

/** h2-engine.c's enum event_kind. */
export const EVENT = { HEADERS: 1, DATA: 2, END_STREAM: 3, CLOSE: 4, GOAWAY: 5, ERROR: 6 } as const;
/** EV_HEADERS flags. */
export const HEADERS_FLAG = { END_STREAM: 1, TRAILERS: 2, TOO_LARGE: 4 } as const;
/** counters() order (h2-engine.c's enum counter). */
export const COUNTER = { SETTINGS: 0, PINGS: 1, RESETS: 2, HEADER_BLOCKS: 3, EMPTY_DATA: 4, COUNT: 5 } as const;
/** SETTINGS parameter ids (RFC 9113 6.5.2). */
export const SETTING = { HEADER_TABLE_SIZE: 1, ENABLE_PUSH: 2, MAX_CONCURRENT_STREAMS: 3, INITIAL_WINDOW_SIZE: 4, MAX_FRAME_SIZE: 5, MAX_HEADER_LIST_SIZE: 6 } as const;

export const h2Engine: H2Engine | undefined = loadAddon<H2Engine>(H2_ENGINE_ADDON);
