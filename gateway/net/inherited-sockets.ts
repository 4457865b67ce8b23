// Listening sockets a process is given at start, by inheritance (spawn and fork stdio): a cluster
// worker gets the sockets its primary holds for its slot (held-sockets.ts), and the next generation
// of gatehouse gets the running one's (runtime/handover.ts). A listening socket, and the connections
// queued on it, so pass from process to process without ever being closed: closing one of several
// SO_REUSEPORT sockets resets the connections queued on it, measured at about 5 per handover under
// load, where passing the socket itself lost none (docs/operations.md). Which descriptor is which
// address travels in one environment variable, read once and removed, so that the processes this
// one starts do not believe they have the descriptors too. What a handover passes besides sockets
// (session ticket keys: secrets) travels on the ready pipe, never in the environment, which
// /proc/PID/environ shows.
import { formatAddress } from '../config/config-values.js';
import fs from 'node:fs';
import net from 'node:net';

export const INHERITED_ENV = 'GATEHOUSE_INHERITED';

export interface Inheritance {
  /** "host:port" as configured → descriptors open in this process, bound (or listening) there. */
  readonly sockets: Readonly<Record<string, readonly number[]>>;
  /** A handover: the pipe on which to tell the generation before that this one serves. */
  readonly ready?: number;
  /** A handover: every address the generation before serves, passed or not. */
  readonly served?: readonly string[];
  /** A handover: the generation before writes one line on the ready pipe for this one (readHanded). */
  readonly handed?: boolean;
}

export const addressKey = formatAddress;

/** What the environment says this process was given, without taking it (a relaunch passes it on as it is). */
export function peekInheritance(env: NodeJS.ProcessEnv = process.env): Inheritance | undefined {
  const text = env[INHERITED_ENV];
  if (text === undefined || text === '') return undefined;
  const value = JSON.parse(text) as Inheritance;
  const fds = Object.values(value.sockets ?? {}).flat();
  if (value.ready !== undefined) fds.push(value.ready);
  if (typeof value.sockets !== 'object' || !fds.every((fd) => Number.isInteger(fd) && fd > 2)) throw new Error(`${INHERITED_ENV}: not a map of addresses to descriptors: ${text}`);
  return value;
}

/** Every descriptor an inheritance names (to pass it on to a relaunched process). */
export function inheritedDescriptors(inheritance: Inheritance): number[] {
  return [...Object.values(inheritance.sockets).flat(), ...(inheritance.ready === undefined ? [] : [inheritance.ready])];
}

interface Taken {
  readonly inheritance: Inheritance;
  /** Descriptors not taken yet, by address. */
  readonly left: Map<string, number[]>;
  ready: number | undefined;
  /** The ready pipe as a socket, once readHanded has read from it: "ready" then goes this way. */
  readySocket?: net.Socket;
  handed?: Promise<HandedLine>;
}

let taken: Taken | null | undefined;

function given(): Taken | null {
  if (taken === undefined) {
    const inheritance = peekInheritance();
    delete process.env[INHERITED_ENV];
    taken = inheritance === undefined ? null : { inheritance, left: new Map(Object.entries(inheritance.sockets).map(([k, fds]) => [k, [...fds]])), ready: inheritance.ready };
  }
  return taken;
}

/** The first descriptor given for `address`, now this caller's (a later listen there binds anew). */
export function takeInherited(address: { host: string; port: number }): number | undefined {
  const left = given()?.left;
  const fds = left?.get(addressKey(address));
  const fd = fds?.shift();
  if (fds?.length === 0) left!.delete(addressKey(address));
  return fd;
}

/** Every descriptor given for `address` (a primary holds them for its workers). */
export function takeAllInherited(address: { host: string; port: number }): number[] {
  const left = given()?.left;
  const fds = left?.get(addressKey(address)) ?? [];
  left?.delete(addressKey(address));
  return fds;
}

/** The addresses the generation before serves (a handover), to share rather than refuse. */
export function servedBefore(): ReadonlySet<string> {
  return new Set(given()?.inheritance.served ?? []);
}

/** Tells the generation before that this one serves now (once), and closes whatever was given and not taken (addresses no longer configured). */
export function settleInheritance(): void {
  const state = given();
  if (state === null) return;
  for (const fds of state.left.values()) for (const fd of fds) closeQuietly(fd);
  state.left.clear();
  const ready = state.ready;
  state.ready = undefined;
  const socket = state.readySocket;
  if (socket !== undefined) {
    socket.end('ready\n', () => socket.destroy()); // its reading side is paused: it would never end by itself
    return;
  }
  if (ready === undefined) return;
  try {
    fs.writeSync(ready, 'ready\n');
  } finally {
    closeQuietly(ready);
  }
}

export type HandedLine = { readonly ok: true; readonly line: string } | { readonly ok: false; readonly problem: string };

/** Longer than one line of state needs; what goes beyond is not what a gatehouse writes. */
const HANDED_MAX_BYTES = 4096;

/**
 * The line the generation before wrote on the ready pipe for this one, read once (later calls get
 * the same answer); undefined when it hands nothing over. It writes as it starts this process, so
 * the line is there long before `timeoutMs`; a closed pipe, a timeout or more than a line is a
 * problem, whose text never quotes what was read (it may hold a key).
 */
export function readHanded(timeoutMs: number): Promise<HandedLine> | undefined {
  const state = given();
  if (state === null || !state.inheritance.handed || state.ready === undefined) return undefined;
  if (state.handed !== undefined) return state.handed;
  // A socket of its own over the descriptor (a socketpair end): it reads without blocking the process,
  // and owns the descriptor from now on.
  const socket = new net.Socket({ fd: state.ready, readable: true, writable: true });
  socket.unref(); // a gatehouse that fails to start still exits
  state.readySocket = socket;
  state.handed = new Promise<HandedLine>((resolve) => {
    let text = '';
    const done = (result: HandedLine) => {
      clearTimeout(timer);
      socket.off('data', onData).off('end', onEnd).pause();
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const end = text.indexOf('\n');
      if (end !== -1) done(end === text.length - 1 ? { ok: true, line: text.slice(0, end) } : { ok: false, problem: 'more than one line on the ready pipe' });
      else if (text.length > HANDED_MAX_BYTES) done({ ok: false, problem: `no line end within ${HANDED_MAX_BYTES} bytes on the ready pipe` });
    };
    const onEnd = () => done({ ok: false, problem: `the ready pipe closed after ${text.length} bytes, before a line end` });
    const timer = setTimeout(() => done({ ok: false, problem: `nothing on the ready pipe within ${timeoutMs} ms` }), timeoutMs);
    socket.on('data', onData).once('end', onEnd);
    // The generation before gone: settleInheritance's "ready" has nobody to tell either.
    socket.on('error', (err) => done({ ok: false, problem: `ready pipe: ${err.message}` }));
  });
  return state.handed;
}

/** Listens `server` on a descriptor this process inherited: a socket bound, perhaps listening already, in another process. */
export function listenOnDescriptor(server: net.Server, fd: number, backlog: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    // listen() takes "anything with an underlying handle": a socket opened on the descriptor lends its
    // handle, which the server then owns (a listen({ fd }) in a cluster worker would ask the primary).
    server.listen(new net.Socket({ fd, readable: false, writable: false }), backlog, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

export function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
}
