// Every failure the API answers with is an HttpProblem: an RFC 9457 problem document plus the headers that go
// with it. Handlers and auth throw these; http/error-handler.ts is the one place that turns errors into replies.
import type { Problem, ValidationError } from '../contract.js';

type ProblemBody = Omit<Problem, 'status' | 'instance'>;

export class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly body: ProblemBody,
    readonly headers: Record<string, string> = {},
  ) {
    super(body.detail ?? body.title);
    this.name = 'HttpProblem';
  }
}

const titles: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

/** A problem whose HTTP status says it all (`type: about:blank`, title = the status text). */
export function plainProblem(status: number, detail: string, headers?: Record<string, string>): HttpProblem {
  return new HttpProblem(status, { type: 'about:blank', title: titles[status] ?? 'Error', detail }, headers);
}

export const problemType = (name: string) => `urn:webhooks-api:problem:${name}`;

/** One segment of a JSON Pointer (RFC 6901): `~` and `/` escaped. */
export const pointerSegment = (segment: string) => segment.replace(/~/g, '~0').replace(/\//g, '~1');

export function validationProblem(errors: ValidationError[], where = 'request'): HttpProblem {
  const count = errors.length === 1 ? '1 problem' : `${errors.length} problems`;
  return new HttpProblem(400, {
    type: problemType('validation'),
    title: 'Request is not valid',
    detail: `${count} in the ${where}.`,
    errors,
  });
}

export function webhookNotFound(id: string): HttpProblem {
  return plainProblem(404, `No webhook with id ${id}.`);
}

const realm = 'Bearer realm="webhooks"';

export function missingCredentials(): HttpProblem {
  return plainProblem(401, 'A bearer token is required.', { 'www-authenticate': realm });
}

export function invalidCredentials(): HttpProblem {
  return plainProblem(401, 'The bearer token is not valid.', {
    'www-authenticate': `${realm}, error="invalid_token"`,
  });
}

export function missingPermission(permissions: readonly string[]): HttpProblem {
  const names = permissions.join(' and ');
  return plainProblem(403, `This operation needs the ${names} permission.`, {
    'www-authenticate': `${realm}, error="insufficient_scope", scope="${permissions.join(' ')}"`,
  });
}
