// The ids of new rows: UUIDv7 (RFC 9562), whose first 48 bits are the creation time in milliseconds.
//
// Every table is keyed or indexed by these ids, and a random (v4) id lands each insert on a random leaf of each such
// index: a commit then writes a page per row per index, and reads back pages that have left SQLite's cache.
// Time-ordered ids append at the right edge of the index, so the rows of one batch share pages. Counted by
// scripts/bench/store-io.ts (20,000 webhooks, batches of 10), random ids against these: a create went from 5.97 to
// 2.87 write and from 1.25 to 0.33 read system calls, and from 12.1 to 5.6 KiB written; a publish with one delivery
// from 7.91 to 6.26 writes and from 16.7 to 13.9 KiB. PostgreSQL's B-tree indexes take inserts the same way (not
// measured). Service CPU per event did not move on the bench's machine, whose store stays in the page cache: 0.451
// against 0.453 ms, three alternating `--only events` runs each.
//
// An id tells when its row was made; the API shows each row's creation time anyway. Ids are no secrets (every
// operation checks the caller's tenant), and 73 random bits follow the time. The random bits come from the pool in
// random-bytes.ts: `uuid` draws them with a system call per id otherwise. Given them, it orders ids by millisecond
// only, not within one; rows of one millisecond still land on the same index page.
import { v7 } from 'uuid';
import { randomBytes } from '../random-bytes.js';

export function newRowId(): string {
  return v7({ random: randomBytes(16) });
}

/** The lowest id of the millisecond `at`: every id made before it sorts below it (retention finds rows by this). */
export function firstRowIdAt(at: Date): string {
  return v7({ msecs: at.getTime(), random: new Uint8Array(16) });
}
