// A real webhook receiver on 127.0.0.1 for the delivery tests: it records every connection and request, and a
// test decides how it answers (or fails to).
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export type Answer = (request: ReceivedRequest, response: ServerResponse) => void;

export interface Receiver {
  /** `http://127.0.0.1:<port>/hook` */
  url: string;
  port: number;
  requests: ReceivedRequest[];
  /** TCP connections accepted: stays 0 when the sender refused before connecting. */
  connections: number;
  /** Resolves with the first request, now or when it arrives. */
  firstRequest(): Promise<ReceivedRequest>;
  close(): Promise<void>;
}

const accept: Answer = (_, response) => response.writeHead(204).end();

export async function startReceiver(answer: Answer = accept): Promise<Receiver> {
  const waiters: Array<(request: ReceivedRequest) => void> = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      receiver.requests.push(request);
      waiters.splice(0).forEach((wake) => wake(request));
      answer(request, res);
    });
  });
  server.on('connection', () => {
    receiver.connections += 1;
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;

  const receiver: Receiver = {
    url: `http://127.0.0.1:${port}/hook`,
    port,
    requests: [],
    connections: 0,
    firstRequest: () => {
      const seen = receiver.requests[0];
      return seen ? Promise.resolve(seen) : new Promise((resolve) => waiters.push(resolve));
    },
    close: async () => {
      // Receivers that never answer keep their sockets open; end them so close() does not wait forever.
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
  return receiver;
}

/** A port nothing listens on: bound once to get a free number, then released. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}
