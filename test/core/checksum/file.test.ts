import test from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { crc32c, crc32cBase64 } from '../../../core/checksum/crc32c.ts';
import { eachChunk, fileChecksum } from '../../../core/checksum/file.ts';

test("a file's size and crc32c come from reads into reused buffers, and a limit stops the reads where it says", async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'gcwal-file-checksum-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const size of [0, 1, 1024 * 1024, 3 * 1024 * 1024 + 5]) {
    const bytes = randomBytes(size);
    const file = path.join(dir, `f${size}`);
    await writeFile(file, bytes);
    t.deepEqual(await fileChecksum(file), { size, crc32c: crc32cBase64(crc32c(bytes)) }, `${size} bytes`);
    const limit = Math.floor(size / 2) + 1;
    let crc = 0;
    let read = 0;
    await eachChunk(
      file,
      (chunk) => {
        crc = crc32c(chunk, crc);
        read += chunk.length;
      },
      limit,
    );
    t.is(read, Math.min(size, limit));
    t.is(crc, crc32c(bytes.subarray(0, limit)), `the first ${limit} of ${size} bytes`);
  }
});
