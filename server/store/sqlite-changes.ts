// How the embedded store learns, cheaply, that another connection (another process) committed to the file.
//
// SQLite's answer is `PRAGMA data_version`: it changes when another connection commits, not for the asking
// connection's own commits. But asking costs a read transaction, which takes and drops a lock on the -shm file
// (several microseconds in the service, as much as the rest of a cached read). So the pragma is asked only when the
// WAL-index header has changed: the first 48 bytes of the -shm file, which SQLite rewrites at every commit of any
// connection (its change counter, last frame and checksums: https://www.sqlite.org/walformat.html). Reading them
// is one pread and no lock. A header read while SQLite rewrites it can only look changed, which costs one pragma.
import { closeSync, openSync, readSync } from 'node:fs';
import type SQLite from 'better-sqlite3';

export interface ChangeSignal {
  /** A number that differs from every earlier answer once another connection has committed since it. */
  dataVersion(): number;
  /** Closes the -shm descriptor. Only after the database is closed: closing a descriptor of a file drops every
   * POSIX lock the process holds on it, SQLite's included. */
  close(): void;
}

const headerBytes = 48;

/** `file` must be in WAL mode and have read once (so the -shm file exists). */
export function changeSignalOf(file: SQLite.Database, path: string): ChangeSignal {
  const pragma = file.prepare('PRAGMA data_version').pluck();
  const shm = openSync(`${path}-shm`, 'r');
  const header = Buffer.alloc(headerBytes);
  const seen = Buffer.alloc(headerBytes);
  // The header first: a commit landing between the two reads then shows as a change at the first call, instead
  // of leaving `version` behind a header that already shows it.
  readSync(shm, seen, 0, headerBytes, 0);
  let version = pragma.get() as number;
  return {
    dataVersion() {
      readSync(shm, header, 0, headerBytes, 0);
      if (header.equals(seen)) return version;
      // Inside a transaction (a read snapshot of the delivery log) the pragma answers for the snapshot, which may
      // predate the commit the header shows: answer it, but leave the header unseen, so the next call outside the
      // transaction asks again.
      if (file.inTransaction) return pragma.get() as number;
      // Someone committed (perhaps this connection): ask SQLite whose it was. Copy the header first, so a commit
      // landing between the two reads shows as a change next time.
      header.copy(seen);
      version = pragma.get() as number;
      return version;
    },
    close: () => closeSync(shm),
  };
}
