// Random bytes from the CSPRNG, drawn from a pool the way Node's own `randomUUID` draws its own. Each
// `crypto.randomBytes` or `getRandomValues` call is one call into OpenSSL, which checks the process id on each (a
// `getpid` system call, to notice a fork), and system calls are dear on the bench's virtual machine: a create spent
// 9.3 µs of its 196 µs in `randomBytes(32)` (wall-clock profile), and `uuid`'s v7() took 2.1 µs an id in a loop
// against 0.1 µs for `randomUUID`. One fill here serves 128 ids or 64 secrets. The bytes handed out are zeroed in the
// pool, so a secret made from them is not left behind there.
import { randomFillSync } from 'node:crypto';

const pool = Buffer.alloc(2048);
let offset = pool.length;

/** `size` bytes (at most 2,048) from the CSPRNG. */
export function randomBytes(size: number): Buffer {
  if (offset + size > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const bytes = Buffer.from(pool.subarray(offset, offset + size));
  pool.fill(0, offset, offset + size);
  offset += size;
  return bytes;
}
