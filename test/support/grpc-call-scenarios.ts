// What a gRPC call must do whoever stands between client and server: the four streaming modes with
// trailers and statuses, a deadline against a slow server, cancellation both ways. Registered by
// test/grpc-peers.test.ts with nothing between (the harness proving itself) and by
// test/grpc-through-gateway.test.ts with the gateway between.
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import { describe, expect, it } from 'vitest';
import type { SeenCall, TestGrpcClient, TestGrpcServer } from './grpc-peers.js';

export interface ScenarioParties {
  readonly client: TestGrpcClient;
  readonly server: TestGrpcServer;
  /** The identity the server sees on the connection: the client's, or the gateway's. */
  readonly serverSeesPeer: string;
}

export interface ScenarioOptions {
  /** What scheduling on a busy 2-core machine may add to a deadline, a cancel or a reset. */
  readonly slackMs: number;
  /**
   * The status a server's reset gives the client: exactly grpc-js's mapping of the RST_STREAM code
   * when nothing is between; through a proxy, any status a reset stream may become.
   */
  readonly resets: 'exact' | 'any failure';
}

/** The calls the server sees from now on: `next()` resolves with the next one. */
export function nextCalls(server: TestGrpcServer): { next(): Promise<SeenCall> } {
  let n = server.calls.length;
  return { next: () => server.call(++n) };
}

/** How the server's side of a call ended, or 'still open' if it has not within `ms`. */
export function endedWithin(call: SeenCall, ms: number): Promise<string> {
  return Promise.race([call.ended, new Promise<string>((resolve) => setTimeout(() => resolve('still open'), ms))]);
}

const TRAILERS = { 'x-checksum': 'c0ffee', 'x-mode-note': 'sent with the status' };
const RESET_STATUSES = [grpc.status.CANCELLED, grpc.status.INTERNAL, grpc.status.UNAVAILABLE];

/** Registers the scenarios; `parties()` is read when each test runs (after the caller's beforeAll). */
export function grpcCallScenarios(parties: () => ScenarioParties, options: ScenarioOptions): void {
  describe('the four streaming modes, with trailers', () => {
    it('unary: the reply echoes the request; header metadata, custom trailers and the peer identity are seen', async () => {
      const { client, server, serverSeesPeer } = parties();
      server.script = { trailers: TRAILERS };
      const calls = nextCalls(server);
      const result = await client.unary('ping', { metadata: { 'x-request-note': 'hello' } }).outcome;
      expect(result).toMatchObject({ code: grpc.status.OK, trailers: TRAILERS });
      expect(result.replies.map(String)).toEqual(['ping']);
      const seen = await calls.next();
      expect(seen).toMatchObject({ peer: serverSeesPeer, deadlineLeftMs: undefined });
      expect(seen.metadata['x-request-note']).toBe('hello');
      expect(await endedWithin(seen, options.slackMs)).toBe('finished');
    });

    it('client streaming: every request arrives, one reply joins them, then the trailers', async () => {
      const { client, server } = parties();
      server.script = { trailers: TRAILERS };
      const calls = nextCalls(server);
      const result = await client.clientStream(['a', 'b', 'c']).outcome;
      expect(result).toMatchObject({ code: grpc.status.OK, trailers: TRAILERS });
      expect(result.replies.map(String)).toEqual(['a+b+c']);
      expect((await calls.next()).requests.map(String)).toEqual(['a', 'b', 'c']);
    });

    it('server streaming: the replies arrive in order, then the trailers', async () => {
      const { client, server } = parties();
      server.script = { replies: 4, trailers: TRAILERS };
      const result = await client.serverStream('tick').outcome;
      expect(result).toMatchObject({ code: grpc.status.OK, trailers: TRAILERS });
      expect(result.replies.map(String)).toEqual(['tick#0', 'tick#1', 'tick#2', 'tick#3']);
    });

    it('server streaming: 2 MiB in 256 KiB replies, far past the HTTP/2 windows, arrives whole', async () => {
      const { client, server } = parties();
      server.script = { replies: 8, replyBytes: 256 * 1024 };
      const result = await client.serverStream('bulk').outcome;
      expect(result.code).toBe(grpc.status.OK);
      expect(result.replies.map((r) => [r.length, r[0], r.at(-1)])).toEqual(Array.from({ length: 8 }, (_, i) => [256 * 1024, i, i]));
    });

    it('bidirectional: each echo comes back before the next request is sent, then the trailers', async () => {
      const { client, server } = parties();
      server.script = { trailers: TRAILERS };
      const replies: string[] = [];
      const { call, outcome } = client.bidi([], { keepOpen: true, onReply: (r) => replies.push(String(r)) });
      for (const message of ['one', 'two', 'three']) {
        call.write(Buffer.from(message));
        for (let i = 0; i < 300 && replies.at(-1) !== message; i++) await new Promise((r) => setTimeout(r, 10));
        expect(replies.at(-1), 'a request held back on the way would never be echoed').toBe(message);
      }
      call.end();
      expect(await outcome).toMatchObject({ code: grpc.status.OK, trailers: TRAILERS });
    });

    it.each(['unary', 'clientStream', 'serverStream', 'bidi'] as const)("%s: the server's status, its message and custom trailers reach the client intact", async (mode) => {
      const { client, server } = parties();
      server.script = { status: { code: grpc.status.FAILED_PRECONDITION, details: 'ledger closed: 100% booked, naïve retry refused' }, trailers: { 'x-retry-after': '30' } };
      const started = mode === 'unary' ? client.unary('x') : mode === 'serverStream' ? client.serverStream('x') : client[mode](['x']);
      const result = await started.outcome;
      expect(result).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: 'ledger closed: 100% booked, naïve retry refused' });
      expect(result.trailers['x-retry-after']).toBe('30');
    });
  });

  describe('a deadline against a slow server', () => {
    it('DEADLINE_EXCEEDED within the deadline plus slack; the server was told the deadline and sees the call cancelled', async () => {
      const { client, server } = parties();
      server.script = { delayMs: 5000 };
      const calls = nextCalls(server);
      const result = await client.unary('slow', { deadlineMs: 400 }).outcome;
      expect(result.code).toBe(grpc.status.DEADLINE_EXCEEDED);
      expect(result.elapsedMs).toBeGreaterThanOrEqual(350);
      expect(result.elapsedMs).toBeLessThan(400 + options.slackMs);
      const seen = await calls.next();
      expect(seen.deadlineLeftMs).toBeGreaterThan(0);
      expect(seen.deadlineLeftMs).toBeLessThanOrEqual(400);
      expect(await endedWithin(seen, options.slackMs)).toBe('cancelled');
    });

    it('a server stream cut by its deadline keeps the replies that came before it', async () => {
      const { client, server } = parties();
      server.script = { replies: 50, delayMs: 100 };
      const result = await client.serverStream('slow', { deadlineMs: 450 }).outcome;
      expect(result.code).toBe(grpc.status.DEADLINE_EXCEEDED);
      expect(result.replies.length).toBeGreaterThanOrEqual(1);
      expect(result.replies.length).toBeLessThan(50);
    });
  });

  describe('cancellation, both ways', () => {
    it("the client's cancel of a server stream reaches the server as a cancel", async () => {
      const { client, server } = parties();
      server.script = { replies: 100, delayMs: 50 };
      const calls = nextCalls(server);
      const started = client.serverStream('long', { onReply: (_r, i) => i === 1 && started.call.cancel() });
      const result = await started.outcome;
      expect(result.code).toBe(grpc.status.CANCELLED);
      expect(result.replies.length).toBeGreaterThanOrEqual(2);
      expect(result.replies.length).toBeLessThan(100);
      expect(await endedWithin(await calls.next(), options.slackMs)).toBe('cancelled');
    });

    it("the client's cancel of a client stream it has not half-closed reaches the server as a cancel, not as an end", async () => {
      const { client, server } = parties();
      const calls = nextCalls(server);
      const { call, outcome } = client.clientStream(['first'], { keepOpen: true });
      const seen = await calls.next();
      for (let i = 0; i < 300 && seen.requests.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(seen.requests.map(String)).toEqual(['first']);
      call.cancel();
      expect((await outcome).code).toBe(grpc.status.CANCELLED);
      expect(await endedWithin(seen, options.slackMs)).toBe('cancelled');
    });

    it("the server's reset (RST_STREAM CANCEL) of a server stream after one reply: the client keeps that reply, then the call fails", async () => {
      const { client, server } = parties();
      server.script = { replies: 5, resetAfterReplies: 1 };
      const calls = nextCalls(server);
      const result = await client.serverStream('doomed', { deadlineMs: 10_000 }).outcome;
      expect(result.replies.map(String)).toEqual(['doomed#0']);
      // grpc-js words a received RST_STREAM CANCEL 'Call cancelled' (its own cancel: 'Cancelled on client').
      if (options.resets === 'exact') expect(result).toMatchObject({ code: grpc.status.CANCELLED, details: 'Call cancelled' });
      else expect(RESET_STATUSES).toContain(result.code);
      expect(result.elapsedMs).toBeLessThan(options.slackMs * 3);
      expect(await (await calls.next()).ended).toBe('reset');
    });

    it("the server's reset (INTERNAL_ERROR) of a bidirectional call after two echoes reaches the client", async () => {
      const { client, server } = parties();
      server.script = { resetAfterReplies: 2, resetCode: http2.constants.NGHTTP2_INTERNAL_ERROR };
      // Each request after the previous echo: how many reach the server in one read (a proxy may
      // pass on requests written together as one) must not decide when it resets.
      const next = ['b', 'c'];
      const started = client.bidi(['a'], { deadlineMs: 10_000, keepOpen: true, onReply: () => started.call.write(Buffer.from(next.shift() ?? '')) });
      const result = await started.outcome;
      expect(result.replies.map(String)).toEqual(['a', 'b']);
      if (options.resets === 'exact') expect(result).toMatchObject({ code: grpc.status.INTERNAL, details: expect.stringMatching(/RST_STREAM with code 2/) });
      else expect(RESET_STATUSES).toContain(result.code);
    });

    it("the server's reset of a unary call before it replies reaches the client", async () => {
      const { client, server } = parties();
      server.script = { resetAfterReplies: 0 };
      const result = await client.unary('x', { deadlineMs: 10_000 }).outcome;
      expect(result.replies).toEqual([]);
      if (options.resets === 'exact') expect(result.code).toBe(grpc.status.CANCELLED);
      else expect(RESET_STATUSES).toContain(result.code);
    });
  });
}
