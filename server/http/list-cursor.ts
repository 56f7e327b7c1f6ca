// The list's `cursor` is opaque to callers: a versioned wrapper around the last creation sequence number seen.
import { validationProblem } from './problems.js';

export function encodeCursor(afterSeq: number): string {
  return Buffer.from(`v1:${afterSeq}`).toString('base64url');
}

export function decodeCursor(cursor: string): number {
  const match = /^v1:(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) {
    throw validationProblem([{ pointer: '/cursor', in: 'query', detail: 'is not a cursor this service gave out' }],
      'query parameters');
  }
  return Number(match[1]);
}
