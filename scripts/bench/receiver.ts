// A webhook receiver on 127.0.0.1 that answers 204 at once and measures its own handling time (request start to
// response written), so the service's delivery overhead can be told apart from the receiver's cost.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Samples } from './stats.js';

export interface Delivery {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** Epoch milliseconds (fractional) when the request arrived. */
  receivedAt: number;
}

export class Receiver {
  /** Handling times in ms of the requests received while `recording` is on. */
  handling = new Samples();
  recording = false;
  received = 0;
  /** Called with every request when set (its body is only collected then). */
  onDelivery: ((delivery: Delivery) => void) | undefined;

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<Receiver> {
    let receiver: Receiver | undefined;
    const server = createServer((request, response) => {
      const started = performance.now();
      const receivedAt = performance.timeOrigin + started;
      const chunks: Buffer[] = [];
      const listener = receiver?.onDelivery;
      request.on('data', (chunk: Buffer) => listener && chunks.push(chunk));
      request.on('end', () => {
        response.writeHead(204).end();
        if (receiver) {
          receiver.received++;
          if (receiver.recording) receiver.handling.push(performance.now() - started);
          listener?.({ path: request.url ?? '/', headers: request.headers, body: Buffer.concat(chunks).toString(), receivedAt });
        }
      });
    });
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    receiver = new Receiver(server, `http://127.0.0.1:${port}`);
    return receiver;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
