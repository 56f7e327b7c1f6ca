// Scaling out on PostgreSQL: `serve` with DELIVERY_WORKER=false (the API alone) and two `webhooks-api worker`
// processes share one database; 1,000 published events all arrive, the delivery log ends with 1,000 succeeded and
// nothing pending. Duplicates (at least once allows them) and how the two workers split the work are printed.
import { once } from 'node:events';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, type StoreSetup } from '../support/backends.js';
import { type ServeProcess, startServe, startWorker, type WorkerProcess } from '../support/process.js';

const events = 1_000;
const publishers = 20;
const postgres = backends.find((backend) => backend.name === 'postgres')!;

interface Delivery {
  eventId?: string;
  messageId: string;
  status: 'pending' | 'succeeded' | 'failed';
  attempts: unknown[];
}

/** Polls `condition` until it holds or the deadline passes; says what it waited for when it gives up. */
async function until(what: string, condition: () => boolean | Promise<boolean>, deadline: number, everyMs = 50) {
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/**
 * Tells which local process holds the client end of each connection to the receiver, from /proc (Linux): the
 * connection's inode in /proc/net/tcp, then the process with a descriptor on that socket. Looked up in the
 * background, in batches and without blocking: a receiver that stalls on its accepts makes attempts time out and be
 * sent again, which would count duplicates the service did not cause. Connections it cannot place stay unknown.
 */
function connectionOwners(receiverPort: number, pids: Map<number, string>) {
  const owners = new Map<Socket, string>();
  const waiting = new Set<Socket>();
  let running: Promise<void> | undefined;
  const hex = (port: number) => port.toString(16).toUpperCase().padStart(4, '0');

  async function resolveBatch(): Promise<void> {
    const batch = [...waiting];
    waiting.clear();
    try {
      const inodeByPort = new Map<string, string>();
      for (const row of (await readFile('/proc/net/tcp', 'utf8')).split('\n')) {
        const cols = row.trim().split(/\s+/);
        if (cols[2] === `0100007F:${hex(receiverPort)}` && cols[1] && cols[9]) inodeByPort.set(cols[1], cols[9]);
      }
      const ownerByInode = new Map<string, string>();
      for (const [pid, name] of pids) {
        const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
        const links = await Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')));
        for (const link of links) {
          const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
          if (inode) ownerByInode.set(inode, name);
        }
      }
      for (const socket of batch) {
        const inode = inodeByPort.get(`0100007F:${hex(socket.remotePort ?? 0)}`);
        const owner = inode ? ownerByInode.get(inode) : undefined;
        if (owner) owners.set(socket, owner);
      }
    } catch {
      // no /proc: every connection stays unknown
    }
  }

  return {
    /** Call on every new connection. */
    add(socket: Socket): void {
      waiting.add(socket);
      running ??= (async () => {
        while (waiting.size > 0) await resolveBatch();
        running = undefined;
      })();
    },
    /** The process name, or 'unknown'; ask once the lookups are done (await settled()). */
    ownerOf: (socket: Socket) => owners.get(socket) ?? 'unknown',
    settled: async () => {
      while (running) await running;
    },
  };
}

describe.skipIf(!postgres.available)(
  'two delivery workers on PostgreSQL (SKIPPED unless TEST_DATABASE_URL=postgres://… is set)',
  () => {
    let store: StoreSetup | undefined;
    let receiver: Server | undefined;
    let owners: ReturnType<typeof connectionOwners> | undefined;
    const workerPids = new Map<number, string>();
    const children: (ServeProcess | WorkerProcess)[] = [];

    // The receiver answers 200 at once and counts requests per connection, to tell the workers apart afterwards.
    const received = {
      total: 0,
      byMessage: new Map<string, number>(),
      seqOf: new Map<string, number>(),
      seqs: new Set<number>(),
      byConnection: new Map<Socket, number>(),
    };

    beforeAll(async () => {
      store = await postgres.setup();
      receiver = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (chunk: Buffer) => chunks.push(chunk));
        req.on('end', () => {
          const id = String(req.headers['webhook-id']);
          const { data } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data: { seq: number } };
          received.total++;
          received.byMessage.set(id, (received.byMessage.get(id) ?? 0) + 1);
          received.seqOf.set(id, data.seq);
          received.seqs.add(data.seq);
          received.byConnection.set(req.socket, (received.byConnection.get(req.socket) ?? 0) + 1);
          res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
        });
      });
      receiver.listen(0, '127.0.0.1');
      await once(receiver, 'listening');
      const tracker = connectionOwners((receiver.address() as AddressInfo).port, workerPids);
      receiver.on('connection', (socket: Socket) => tracker.add(socket));
      owners = tracker;
    });

    afterAll(async () => {
      // No leaks: every child is stopped (politely, then for good), the receiver closed and the schema dropped.
      await Promise.all(
        children.map(async ({ child, exited }) => {
          if (child.exitCode !== null || child.signalCode !== null) return;
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
          await exited;
          clearTimeout(timer);
        }),
      );
      if (receiver) {
        receiver.closeAllConnections();
        receiver.close();
      }
      await store?.cleanup();
    });

    it('delivers 1,000 events through two workers, every one, with 1,000 succeeded and none pending', async () => {
      const started = Date.now();
      const deadline = started + 110_000;
      const common = {
        DATA_DIR: store!.dataDir,
        DATABASE_URL: store!.databaseUrl!,
        CALLBACK_ALLOWED_CIDRS: '127.0.0.0/8',
        DELIVERY_POLL_INTERVAL: '50ms',
        DELIVERY_LEASE: '10s',
        DELIVERY_TIMEOUT_MS: '5000',
        DELIVERY_RETRY_SCHEDULE: '0s,500ms,1s,2s,2s,2s,2s,2s',
      };
      const serve = await startServe({ ...common, DELIVERY_WORKER: 'false' });
      children.push(serve);
      // serve has migrated the schema; the two workers start on it together.
      const workers = await Promise.all([startWorker(common), startWorker(common)]);
      children.push(...workers);
      workers.forEach((worker, i) => workerPids.set(worker.child.pid!, `worker ${i + 1}`));

      const token = serve.bootstrapToken!;
      expect(token).toBeDefined();
      const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      const { port } = receiver!.address() as AddressInfo;
      const created = await fetch(`${serve.baseUrl}/api/web/v1/webhooks`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ callbackUrl: `http://127.0.0.1:${port}/hook`, events: ['*'] }),
      });
      expect(created.status).toBe(200);
      const webhookId = ((await created.json()) as { id: string }).id;

      // Publish 1,000 events, 20 at a time, through the API-only serve.
      const accepted = new Map<number, string>(); // seq → event id
      const refused: string[] = [];
      const queue = Array.from({ length: events }, (_, seq) => seq);
      await Promise.all(
        Array.from({ length: publishers }, async () => {
          for (let seq = queue.shift(); seq !== undefined; seq = queue.shift()) {
            const response = await fetch(`${serve.baseUrl}/api/web/v1/events`, {
              method: 'POST',
              headers: auth,
              body: JSON.stringify({ type: 'scale.test', data: { seq } }),
            });
            if (response.status === 202) accepted.set(seq, ((await response.json()) as { id: string }).id);
            else refused.push(`seq ${seq}: ${response.status} ${await response.text()}`);
          }
        }),
      );
      const published = Date.now();
      expect(refused).toEqual([]);
      expect(accepted.size).toBe(events);

      await until(`all ${events} events to arrive`, () => received.seqs.size === events, Math.min(deadline, published + 60_000));
      const arrived = Date.now();

      const list = async (status?: string) => {
        const all: Delivery[] = [];
        let url: string | undefined =
          `${serve.baseUrl}/api/web/v1/webhooks/${webhookId}/deliveries?limit=1000${status ? `&status=${status}` : ''}`;
        while (url) {
          const response: Response = await fetch(url, { headers: auth });
          if (response.status !== 200) throw new Error(`listing deliveries answered ${response.status}`);
          all.push(...((await response.json()) as Delivery[]));
          const next = /^<([^>]+)>/.exec(response.headers.get('link') ?? '')?.[1];
          url = next ? new URL(next, serve.baseUrl).href : undefined;
        }
        return all;
      };
      // Outcomes are recorded in batches just after the answers: wait for the last batch.
      await until('no pending delivery', async () => (await list('pending')).length === 0, Math.min(deadline, arrived + 30_000), 250);
      const log = await list();

      await owners!.settled();
      const byWorker = new Map<string, number>();
      for (const [socket, count] of received.byConnection) {
        const owner = owners!.ownerOf(socket);
        byWorker.set(owner, (byWorker.get(owner) ?? 0) + count);
      }
      const split = [...byWorker].sort().map(([worker, count]) => `${worker} ${count}`).join(', ');
      const duplicates = received.total - received.byMessage.size;
      const attempts = log.reduce((sum, delivery) => sum + delivery.attempts.length, 0);
      console.log(
        `postgres-workers: ${events} events; ${received.total} requests for ${received.byMessage.size} messages: ` +
          `${duplicates} duplicates; ${attempts} attempts recorded; requests per worker: ${split}; ` +
          `publishing took ${((published - started) / 1000).toFixed(1)} s, all arrived after ` +
          `${((arrived - started) / 1000).toFixed(1)} s`,
      );

      expect(workers.every((worker) => worker.child.exitCode === null)).toBe(true);
      const byEvent = new Map(log.map((delivery) => [delivery.eventId, delivery]));
      const lost: string[] = [];
      for (const [seq, eventId] of accepted) {
        const delivery = byEvent.get(eventId);
        if (!delivery) lost.push(`seq ${seq}: event ${eventId} has no delivery`);
        else if (received.seqOf.get(delivery.messageId) !== seq) lost.push(`seq ${seq}: ${delivery.messageId} did not arrive`);
      }
      expect(lost).toEqual([]);
      expect(log).toHaveLength(events);
      expect(log.filter((delivery) => delivery.status === 'pending')).toEqual([]);
      expect(log.filter((delivery) => delivery.status === 'succeeded')).toHaveLength(events);
      expect(log.filter((d) => d.status === 'succeeded' && !received.byMessage.has(d.messageId))).toEqual([]);
    }, 120_000);
  },
);
