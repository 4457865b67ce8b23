// A small DNS server over UDP on loopback, for tests of upstream host names: it answers A queries
// for the names it is given (the answer can be changed while it runs) and an empty NOERROR to
// anything else, AAAA included. Queries are counted by name.
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';

export interface TestDnsServer {
  readonly port: number;
  /** name → IPv4 addresses answered; change it at will. */
  readonly records: Map<string, string[]>;
  readonly queries: Map<string, number>;
  close(): Promise<void>;
}

export async function startDnsServer(records: Record<string, string[]>): Promise<TestDnsServer> {
  const socket = dgram.createSocket('udp4');
  const server: TestDnsServer = {
    port: 0,
    records: new Map(Object.entries(records)),
    queries: new Map(),
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
  socket.on('message', (query, peer) => {
    const question = readQuestion(query);
    if (question === undefined) return;
    server.queries.set(question.name, (server.queries.get(question.name) ?? 0) + 1);
    const addresses = question.type === 1 ? (server.records.get(question.name) ?? []) : [];
    socket.send(answer(query, question.end, addresses), peer.port, peer.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return Object.assign(server, { port: (socket.address() as AddressInfo).port });
}

/** The first question: its name (lowercase), type, and where it ends in the message. */
function readQuestion(msg: Buffer): { name: string; type: number; end: number } | undefined {
  const labels: string[] = [];
  let i = 12;
  while (i < msg.length && msg[i] !== 0) {
    const length = msg[i]!;
    labels.push(msg.subarray(i + 1, i + 1 + length).toString('latin1').toLowerCase());
    i += 1 + length;
  }
  if (i + 5 > msg.length) return undefined;
  return { name: labels.join('.'), type: msg.readUInt16BE(i + 1), end: i + 5 };
}

/** The query's header and question, turned into a response with one A record per address. */
function answer(query: Buffer, questionEnd: number, addresses: readonly string[]): Buffer {
  const head = Buffer.from(query.subarray(0, questionEnd));
  head.writeUInt16BE(0x8180, 2); // response, recursion desired and available, NOERROR
  head.writeUInt16BE(1, 4); // one question
  head.writeUInt16BE(addresses.length, 6);
  head.writeUInt16BE(0, 8);
  head.writeUInt16BE(0, 10);
  const records = addresses.map((address) => {
    const rr = Buffer.alloc(16);
    rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
    rr.writeUInt16BE(1, 2); // A
    rr.writeUInt16BE(1, 4); // IN
    rr.writeUInt32BE(1, 6); // TTL 1 s
    rr.writeUInt16BE(4, 10);
    address.split('.').forEach((octet, k) => rr.writeUInt8(Number(octet), 12 + k));
    return rr;
  });
  return Buffer.concat([head, ...records]);
}
