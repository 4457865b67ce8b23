// Configuration reload as an operator does it, on the compiled CLI: `kill -HUP`, `POST /reload` and
// (opt-in) `watch_config: true` re-read the file; a caller already connected (keep-alive) sees a
// narrowed allow-list on its very next request on the same connection; a broken file changes nothing (still served, failure counted,
// the problem logged as FILE:LINE:COL); listeners are added and removed, one changed on its own
// address is refused as needing a restart; with two
// workers the change applies in both; POST /reload is refused on an admin address that is not loopback.
import { createHash } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cliFixture, freePort, startCli, stopCli, writeTerminateConfig, type CliFixture, type CliGateway } from './support/gatehouse-cli.js';
import { id } from './support/test-pki.js';

const children = new Set<ChildProcess>();
let fixture: CliFixture;
let running: CliGateway | undefined;

beforeAll(async () => {
  fixture = await cliFixture(children);
}, 30_000);
afterAll(() => fixture?.close());
afterEach(async () => {
  if (running) expect(await stopCli(running, children)).toBe(0);
  running = undefined;
}, 20_000);

/** A config file allowing `frontend` (the fixture's client); `head` goes before `admin:`. */
async function writeConfig(name: string, head = '') {
  return writeTerminateConfig({
    file: path.join(fixture.pki.dir, `${name}.yaml`),
    head,
    sessionTickets: '  enabled: true\n',
    server: fixture.server,
    caFile: fixture.pki.caFile,
    allowId: id('frontend'),
    originPort: fixture.originPort,
  });
}

/** Rewrites the file's allow-list to name only someone else. */
function narrowAllowList(file: string): void {
  const text = fs.readFileSync(file, 'utf8');
  const narrowed = text.replace(`allow: [${id('frontend')}]`, `allow: [${id('someone-else')}]`);
  expect(narrowed).not.toBe(text);
  fs.writeFileSync(file, narrowed);
}

/** One caller holding one keep-alive mTLS connection: every request says which local port it went from. */
function keepAliveCaller(port: number) {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  const get = () =>
    new Promise<{ status: number; localPort: number | undefined }>((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', port, servername: 'localhost', headers: { host: 'localhost' }, path: '/', agent, ca: fixture.pki.ca.rootPem, cert: fixture.client.chainPem, key: fixture.client.keyPem },
        (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, localPort: req.socket?.localPort }));
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
      req.on('error', reject);
      req.end();
    });
  return { get, close: () => agent.destroy() };
}

/** One request on a connection of its own. */
async function getOnce(port: number): Promise<number> {
  const caller = keepAliveCaller(port);
  try {
    return (await caller.get()).status;
  } finally {
    caller.close();
  }
}

const admin = (g: CliGateway, pathname: string, init?: RequestInit) => fetch(`http://127.0.0.1:${g.adminPort}${pathname}`, init);
const postReload = async (g: CliGateway) => {
  const res = await admin(g, '/reload', { method: 'POST' });
  return { status: res.status, body: (await res.json()) as { ok: boolean; hash: string; problems: string[]; processes: { slot?: number; problems: string[] }[] } };
};
const hashOf = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const activeHash = async (g: CliGateway) => ((await (await admin(g, '/config_dump')).json()) as { hash: string }).hash;
async function metric(g: CliGateway, series: string): Promise<number | undefined> {
  const text = await (await admin(g, '/metrics')).text();
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** SIGHUP is answered asynchronously: waits (5 s at most) until /config_dump shows `hash`. */
async function untilActive(g: CliGateway, hash: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await activeHash(g)) === hash) return;
    await sleep(50);
  }
  throw new Error(`configuration ${hash} not active within 5 s: ${g.output()}`);
}

describe('reload in one process', () => {
  /** A caller connected and allowed; the allow-list narrowed and `reload` run: its next request, on the same connection, is refused. */
  async function narrowedForConnectedCaller(name: string, reload: (g: CliGateway, file: string) => Promise<void>, head = ''): Promise<CliGateway> {
    const config = await writeConfig(name, head);
    const g = (running = await startCli(config, ['--workers', '1'], children));
    expect(await activeHash(g)).toBe(hashOf(config.file));
    const caller = keepAliveCaller(config.port);
    try {
      const before = await caller.get();
      expect(before.status).toBe(200);
      narrowAllowList(config.file);
      await reload(g, config.file);
      const after = await caller.get();
      expect(after.localPort, 'the same connection').toBe(before.localPort);
      expect(after.status).toBe(403);
    } finally {
      caller.close();
    }
    return g;
  }

  it('SIGHUP: a narrowed allow-list refuses a caller already connected, on its next request on the same connection', async () => {
    const g = await narrowedForConnectedCaller('sighup', async (g, file) => {
      g.child.kill('SIGHUP');
      await untilActive(g, hashOf(file));
    });
    expect(g.child.exitCode, 'SIGHUP does not end the gateway').toBeNull();
    expect(await metric(g, 'gatehouse_config_reloads_total{result="success"}')).toBe(1);
    expect(await metric(g, `gatehouse_config_info{hash="${await activeHash(g)}"}`)).toBe(1);
  }, 30_000);

  it('POST /reload: the same, answered with the new hash; /config_dump shows the new allow-list', async () => {
    let file = '';
    const g = await narrowedForConnectedCaller('post', async (g, configFile) => {
      file = configFile;
      const reload = await postReload(g);
      expect(reload.status).toBe(200);
      expect(reload.body).toMatchObject({ ok: true, hash: hashOf(configFile), problems: [] });
    });
    const dump = (await (await admin(g, '/config_dump')).json()) as { file: string; config: { listeners: { routes: unknown[] }[] } };
    expect(dump.file).toBe(file);
    expect(JSON.stringify(dump.config.listeners[0]!.routes[0])).toContain(id('someone-else'));
  }, 30_000);

  it('watch_config: true: an edit of the file is enough, for a caller already connected', async () => {
    await narrowedForConnectedCaller('watch', (g, file) => untilActive(g, hashOf(file)), 'watch_config: true\n');
  }, 30_000);

  it('a broken file (a YAML syntax error, then an unknown key) changes nothing: still served, failures counted, FILE:LINE:COL logged', async () => {
    const config = await writeConfig('broken');
    running = await startCli(config, ['--workers', '1'], children);
    const good = hashOf(config.file);
    const caller = keepAliveCaller(config.port);
    try {
      expect((await caller.get()).status).toBe(200);
      const text = fs.readFileSync(config.file, 'utf8');
      narrowAllowList(config.file); // would refuse the caller, were it applied
      fs.appendFileSync(config.file, 'upstreams: [unclosed\n');
      const syntax = await postReload(running);
      expect(syntax.status).toBe(422);
      expect(syntax.body.ok).toBe(false);
      expect(syntax.body.hash).toBe(good);
      expect(syntax.body.problems[0]).toMatch(new RegExp(`^${escape(config.file)}:\\d+:\\d+: .*YAML`));

      fs.writeFileSync(config.file, text.replace('listeners:', 'listners_typo: 1\nlisteners:'));
      running.child.kill('SIGHUP');
      const unknownKey = new RegExp(`${escape(config.file)}:\\d+:\\d+: listners_typo: `);
      for (let i = 0; i < 100 && !unknownKey.test(running.output()); i++) await sleep(50);
      expect(running.output()).toMatch(unknownKey);

      // Without watch_config the edits themselves reload nothing: three times the watcher's debounce later, still two.
      await sleep(500);
      expect((await caller.get()).status).toBe(200);
      expect(await activeHash(running)).toBe(good);
      expect(await metric(running, 'gatehouse_config_reloads_total{result="failure"}')).toBe(2);
      expect(await metric(running, 'gatehouse_config_reloads_total{result="success"}')).toBeUndefined();
      expect(running.child.exitCode).toBeNull();
    } finally {
      caller.close();
    }
  }, 30_000);

  it('binds a listener added by a reload and closes one removed; a listener changed on its own address is refused as needing a restart', async () => {
    const config = await writeConfig('listeners');
    running = await startCli(config, ['--workers', '1'], children);
    const text = fs.readFileSync(config.file, 'utf8');
    const block = text.slice(text.indexOf('  - name: public'), text.indexOf('upstreams:'));
    const secondPort = await freePort();
    const second = block.replace('name: public', 'name: second').replace(`127.0.0.1:${config.port}`, `127.0.0.1:${secondPort}`);
    fs.writeFileSync(config.file, text.replace('upstreams:', `${second}upstreams:`));
    expect((await postReload(running)).body).toMatchObject({ ok: true });
    expect(await getOnce(secondPort)).toBe(200);
    expect(await getOnce(config.port)).toBe(200);

    fs.writeFileSync(config.file, text.replace(block, second));
    expect((await postReload(running)).body).toMatchObject({ ok: true });
    await expect(getOnce(config.port)).rejects.toThrow(/ECONNREFUSED/);
    expect(await getOnce(secondPort)).toBe(200);

    fs.writeFileSync(config.file, text.replace(block, second.replace(`127.0.0.1:${secondPort}\n`, `127.0.0.1:${secondPort}\n    max_connections: 5\n`)));
    const refused = await postReload(running);
    expect(refused.status).toBe(422);
    expect(refused.body.problems).toEqual([`${config.file}: listener second changed (maxConnections) on the same address: needs a restart (or a new address)`]);
    expect(await getOnce(secondPort)).toBe(200);
  }, 30_000);

  it('refuses POST /reload with 403 when the admin address is not loopback', async () => {
    const config = await writeConfig('exposed');
    fs.writeFileSync(config.file, fs.readFileSync(config.file, 'utf8').replace(`address: 127.0.0.1:${config.adminPort}`, `address: 0.0.0.0:${config.adminPort}`));
    running = await startCli(config, ['--workers', '1'], children);
    narrowAllowList(config.file);
    const res = await admin(running, '/reload', { method: 'POST' });
    expect(res.status).toBe(403);
    expect(await res.text()).toContain('is not loopback');
    expect(await activeHash(running)).not.toBe(hashOf(config.file));
  }, 30_000);

  it('with admin.token_file, POST /reload needs its bearer token, on a non-loopback admin address too', async () => {
    const config = await writeConfig('token');
    const tokenFile = path.join(fixture.pki.dir, 'admin-token');
    fs.writeFileSync(tokenFile, 's3cret-token\n');
    fs.writeFileSync(config.file, fs.readFileSync(config.file, 'utf8').replace(`address: 127.0.0.1:${config.adminPort}`, `address: 0.0.0.0:${config.adminPort}\n  token_file: ${tokenFile}`));
    running = await startCli(config, ['--workers', '1'], children);
    narrowAllowList(config.file);
    const post = (authorization?: string) => admin(running!, '/reload', { method: 'POST', headers: authorization ? { authorization } : {} });
    const none = await post();
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    expect((await post('Bearer wrong-token')).status).toBe(401);
    expect(await activeHash(running)).not.toBe(hashOf(config.file));
    expect((await post('Bearer s3cret-token')).status).toBe(200);
    expect(await activeHash(running)).toBe(hashOf(config.file));
  }, 30_000);
});

describe('reload with two workers', () => {
  it('SIGHUP to the primary narrows the allow-list in both workers, for callers already connected to each', async () => {
    const config = await writeConfig('workers');
    running = await startCli(config, ['--workers', '2'], children);
    const g = running;
    // Connections until both workers hold one (the kernel spreads them by source port).
    const callers: ReturnType<typeof keepAliveCaller>[] = [];
    try {
      for (let i = 0; i < 40; i++) {
        const caller = keepAliveCaller(config.port);
        callers.push(caller);
        expect((await caller.get()).status).toBe(200);
        const workers = (await (await admin(g, '/workers')).json()) as { handshakes: number }[];
        if (workers.every((w) => w.handshakes > 0)) break;
      }
      const workers = (await (await admin(g, '/workers')).json()) as { handshakes: number }[];
      expect(workers.map((w) => w.handshakes > 0)).toEqual([true, true]);

      narrowAllowList(config.file);
      g.child.kill('SIGHUP');
      await untilActive(g, hashOf(config.file));
      for (const caller of callers) expect((await caller.get()).status).toBe(403);
      expect(await metric(g, 'gatehouse_config_reloads_total{result="success"}')).toBe(1);

      // A listener added: bound by each worker (POST /reload reports each), served with the narrowed list.
      const text = fs.readFileSync(config.file, 'utf8');
      const secondPort = await freePort();
      const second = text.slice(text.indexOf('  - name: public'), text.indexOf('upstreams:')).replace('name: public', 'name: second').replace(`127.0.0.1:${config.port}`, `127.0.0.1:${secondPort}`);
      fs.writeFileSync(config.file, text.replace('upstreams:', `${second}upstreams:`));
      const reload = await postReload(g);
      expect(reload.body.processes.map((p) => [p.slot, p.problems])).toEqual([
        [0, []],
        [1, []],
      ]);
      const handshakes = async () => ((await (await admin(g, '/workers')).json()) as { handshakes: number }[]).reduce((n, w) => n + w.handshakes, 0);
      const before = await handshakes();
      for (let i = 0; i < 4; i++) expect(await getOnce(secondPort)).toBe(403);
      expect(await handshakes(), "/workers counts the added listener's handshakes").toBe(before + 4);

      // An address another process shares with SO_REUSEPORT (another gatehouse) is refused, as at start.
      const shared = await freePort();
      const holder = net.createServer();
      await new Promise<void>((resolve) => holder.listen({ host: '127.0.0.1', port: shared, reusePort: true }, resolve));
      try {
        const withSecond = fs.readFileSync(config.file, 'utf8');
        fs.writeFileSync(config.file, withSecond.replace('upstreams:', `${second.replace('name: second', 'name: third').replace(`127.0.0.1:${secondPort}`, `127.0.0.1:${shared}`)}upstreams:`));
        const taken = await postReload(g);
        expect(taken.status).toBe(422);
        expect(taken.body.problems.join('\n')).toMatch(/listener 'third'.*EADDRINUSE/);
      } finally {
        holder.close();
      }
    } finally {
      for (const caller of callers) caller.close();
    }
  }, 60_000);
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
