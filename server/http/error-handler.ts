// The one place that turns every failure into the contract's problem+json: validation errors from Ajv,
// Fastify's own client errors (bad JSON, wrong media type, body too large), auth failures reported by
// fastify-openapi-glue, our HttpProblems, anything unexpected (logged with the request id, answered 500
// with no stack trace), and requests Node's HTTP parser refuses before Fastify sees them (answerClientError).
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type {
  ConnectionError,
  FastifyError,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
} from 'fastify';
import type { ValidationError } from '../contract.js';
import { HttpProblem, plainProblem, pointerSegment, validationProblem } from './problems.js';

type AjvError = {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
};

const locations: Record<string, ValidationError['in']> = {
  body: 'body',
  params: 'path',
  querystring: 'query',
  headers: 'header',
};
const whereText: Record<string, string> = {
  body: 'request body',
  params: 'path parameters',
  querystring: 'query parameters',
  headers: 'request headers',
};

function toValidationError(error: AjvError, location: ValidationError['in']): ValidationError {
  const { keyword, params } = error;
  let pointer = error.instancePath;
  let detail = error.message ?? 'is not valid';
  if (keyword === 'required') {
    pointer += `/${pointerSegment(String(params.missingProperty))}`;
    detail = 'is required';
  } else if (keyword === 'additionalProperties') {
    pointer += `/${pointerSegment(String(params.additionalProperty))}`;
    detail = 'is not a known property';
  } else if (keyword === 'propertyNames') {
    pointer += `/${pointerSegment(String(params.propertyName))}`;
    detail = 'is not a valid name';
  }
  return { pointer: pointer || '/', in: location, detail };
}

/** Ajv sometimes reports one fault twice (a property name and its pattern); keep one per pointer and text. */
function uniqueErrors(errors: ValidationError[]): ValidationError[] {
  const seen = new Set<string>();
  return errors.filter((e) => {
    const key = `${e.in}${e.pointer}${e.detail}`;
    return seen.has(key) ? false : (seen.add(key), true);
  });
}

function toProblem(error: FastifyError & { errors?: unknown[] }, request: FastifyRequest): HttpProblem {
  if (error instanceof HttpProblem) return error;
  if (error.validation) {
    const context = error.validationContext ?? 'body';
    const location = locations[context] ?? 'body';
    const errors = (error.validation as AjvError[])
      .filter((e) => e.keyword !== 'if') // `if` only says which branch failed; the branch's own error says why
      .map((e) => toValidationError(e, location));
    return validationProblem(uniqueErrors(errors), whereText[context] ?? 'request');
  }
  // fastify-openapi-glue wraps what the security handlers threw; the most specific of them is the answer.
  if (error.name === 'Unauthorized' && Array.isArray(error.errors)) {
    const problems = error.errors.filter((e): e is HttpProblem => e instanceof HttpProblem);
    const forbidden = problems.find((p) => p.status === 403);
    const chosen = forbidden ?? problems[0];
    if (chosen) return chosen;
    request.log.error({ err: error.errors[0] ?? error }, 'security handler failed unexpectedly');
    return unexpected(request);
  }
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) return plainProblem(status, error.message);
  request.log.error({ err: error }, 'unexpected error');
  return unexpected(request);
}

function unexpected(request: FastifyRequest): HttpProblem {
  return plainProblem(500, `An unexpected error occurred. Request id: ${request.id}.`);
}

export function sendProblem(reply: FastifyReply, request: FastifyRequest, problem: HttpProblem): FastifyReply {
  return reply
    .code(problem.status)
    .headers(problem.headers)
    .type('application/problem+json')
    .send({ ...problem.body, status: problem.status, instance: request.url.split('?')[0] });
}

/** The most of an unread body the service reads and discards after an error answer, so the client can read it. */
const maxDiscardedBodyBytes = 16 * 1024 * 1024;

/**
 * An error can be answered before the request's body was read: a body over the limit (413, which Fastify answers
 * before reading it and marks the connection to close), a media type the operation does not take (415), a caller
 * refused before its body is parsed (401/403). A connection closed with the client's upload still arriving answers
 * it with a reset, which can reach the client before it read the answer (Prism's proxy answered 500 for it). So the
 * rest of the body is read and discarded, and the connection stays open for the next request; but never more than
 * 16 MiB of it, so that nobody can make the service read an endless body it has refused: a declared length over
 * that closes the connection with the answer, and a chunked body that grows past it is cut off.
 */
function discardUnreadBody(request: FastifyRequest, reply: FastifyReply): void {
  const body = request.raw;
  if (body.complete) return;
  if (Number(request.headers['content-length']) > maxDiscardedBodyBytes) {
    reply.header('connection', 'close');
    return;
  }
  reply.removeHeader('connection');
  const socket = body.socket;
  answeredWhileReceiving.add(socket);
  let discarded = 0;
  body.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > maxDiscardedBodyBytes) socket.destroy();
  });
  body.on('end', () => answeredWhileReceiving.delete(socket));
  body.resume();
}

/**
 * Connections whose request was answered before its body had arrived, while the rest of it is discarded. If that
 * rest then fails (it arrives too slowly, or is not valid HTTP), the client has its answer already: a second one
 * would be read as the next request's (answerClientError closes these without writing).
 */
const answeredWhileReceiving = new WeakSet<Socket>();

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    discardUnreadBody(request, reply);
    return sendProblem(reply, request, toProblem(error, request));
  });
  app.setNotFoundHandler((request, reply) => {
    discardUnreadBody(request, reply);
    return sendProblem(reply, request, plainProblem(404, `There is no ${request.method} ${request.url.split('?')[0]}.`));
  });
}

/** What Node's HTTP parser refused, as a problem. */
function connectionProblem(error: ConnectionError & { reason?: string }, requestTimeoutMs: number): HttpProblem {
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return plainProblem(408, `The request did not arrive in full within ${requestTimeoutMs / 1000} s.`);
  }
  if (error.code === 'HPE_HEADER_OVERFLOW') {
    return plainProblem(431, 'The request headers are larger than this server accepts.');
  }
  if (error.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW') {
    return plainProblem(413, 'The chunk extensions of the request body are larger than this server accepts.');
  }
  return plainProblem(400, `The request is not valid HTTP/1.1${error.reason ? `: ${error.reason}` : ''}.`);
}

/**
 * Fastify's `clientErrorHandler`: Node's HTTP server reports here what it refused before a request existed (a
 * request that did not arrive in full within REQUEST_TIMEOUT_MS, headers over the size bound, bytes that are not
 * HTTP). The answer is written to the socket by hand, as a problem, and the connection is closed: what else
 * arrived on it cannot be trusted to start a request.
 */
export function answerClientError(requestTimeoutMs: number) {
  // Fastify calls it bound to the instance.
  return function (this: FastifyInstance, error: ConnectionError, socket: Socket): void {
    // A reset or a socket already gone: nobody to answer.
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    const problem = connectionProblem(error, requestTimeoutMs);
    this.log.debug({ code: error.code, status: problem.status, remoteAddress: socket.remoteAddress }, 'client error');
    // The answer being written on this connection, if any. When it is the refused request's own (its body did not
    // arrive in time) and has not begun, the problem takes its place. When it belongs to an earlier request that
    // arrived whole (pipelining), the client would read the problem as that request's answer: close instead.
    // (Node's own handler answers in both cases.)
    const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
    const answered = answeredWhileReceiving.has(socket);
    if (socket.writable && !answered && (!inFlight || (!inFlight.req.complete && !inFlight.headersSent))) {
      const body = JSON.stringify({ ...problem.body, status: problem.status });
      socket.write(
        `HTTP/1.1 ${problem.status} ${problem.body.title}\r\ncontent-type: application/problem+json\r\n` +
          `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy();
  };
}
