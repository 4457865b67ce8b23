// The HTTP/2 floods nghttp2 cannot see on its own, counted per client connection as their frames
// arrive. nghttp2 bounds what it must queue in answer (PING and SETTINGS acknowledgements, resets),
// the CONTINUATION frames of one header block, the streams open at once and the header list size;
// it does not see a client whose every frame is legal but whose pattern is an attack:
// - rapid reset (CVE-2023-44487): open a stream, reset it, repeat; each one has already cost a
//   route, an authorization and an upstream request. Measured as Envoy does: a stream the client
//   resets within a second of opening it is a premature reset, and a connection where they are at
//   least PREMATURE_RESETS_MIN and half of all its streams is closed (nghttp2's own reset rate
//   limit, 1000 at once then 33 a second, stays behind it);
// - PING and SETTINGS frames faster than any client needs, each answered by an acknowledgement
//   (CVE-2019-9512, CVE-2019-9515) even when the client reads them.
import type { Http2CloseReason } from '../reasons.js';

/** A reset this soon after the stream opened is premature. */
const PREMATURE_RESET_MS = 1000;
/** Premature resets a connection may have before the share of them is judged. */
const PREMATURE_RESETS_MIN = 100;
const WINDOW_MS = 1000;
/** PINGs a second: keepalives and BDP probes are a few a second at most. */
export const MAX_PINGS_PER_SECOND = 500;
/** SETTINGS a second: a client sends one, and a few more when it changes its mind. */
export const MAX_SETTINGS_PER_SECOND = 50;

export class FloodGuard {
  #streams = 0;
  #prematureResets = 0;
  #windowStart = 0;
  #pings = 0;
  #settings = 0;

  streamOpened(): void {
    this.#streams++;
  }

  /** The client reset a stream `ageMs` after opening it, before its response ended. */
  streamReset(ageMs: number): Http2CloseReason | undefined {
    if (ageMs >= PREMATURE_RESET_MS) return undefined;
    const resets = ++this.#prematureResets;
    return resets >= PREMATURE_RESETS_MIN && resets * 2 >= this.#streams ? 'rapid_reset' : undefined;
  }

  ping(now: number): Http2CloseReason | undefined {
    this.#roll(now);
    return ++this.#pings > MAX_PINGS_PER_SECOND ? 'ping_flood' : undefined;
  }

  settings(now: number): Http2CloseReason | undefined {
    this.#roll(now);
    return ++this.#settings > MAX_SETTINGS_PER_SECOND ? 'settings_flood' : undefined;
  }

  /** nghttp2 found its queue of answers flooded: named by what the client sent most of this second. */
  floodedBy(): Http2CloseReason {
    if (this.#pings === 0 && this.#settings === 0) return 'frame_flood';
    return this.#pings >= this.#settings ? 'ping_flood' : 'settings_flood';
  }

  #roll(now: number): void {
    if (now - this.#windowStart < WINDOW_MS) return;
    this.#windowStart = now;
    this.#pings = 0;
    this.#settings = 0;
  }
}
