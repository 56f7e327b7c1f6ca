// List cursors are opaque to callers: a versioned wrapper around the position of the last item seen. A cursor
// that was not made here, or was changed, is a 400 pointing at the `cursor` query parameter.
import { validationProblem } from './problems.js';

export function encodeCursor(position: Record<string, string | number>): string {
  return Buffer.from(JSON.stringify({ v: 1, ...position })).toString('base64url');
}

export function decodeCursor<T>(cursor: string, isPosition: (value: Record<string, unknown>) => value is Record<string, unknown> & T): T {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  if (typeof value === 'object' && value !== null && (value as { v?: unknown }).v === 1 && isPosition(value as Record<string, unknown>)) {
    return value as T;
  }
  throw validationProblem([{ pointer: '/cursor', in: 'query', detail: 'is not a cursor this service gave out' }], 'query parameters');
}

/** The `Link: <…>; rel="next"` value for the same path with the next page's query. */
export function nextLink(url: string, query: Record<string, string>): string {
  return `<${url.split('?')[0]}?${new URLSearchParams(query)}>; rel="next"`;
}
