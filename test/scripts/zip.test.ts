/**
 * scripts/zip.mjs against Info-ZIP's unzip (an independent reader): the
 * archives it writes test clean and give back every file byte for byte, and
 * the same input always gives the same archive.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { exec } from '../../local/testkit/exec.ts';
// @ts-expect-error: a plain .mjs build script without type declarations
import { crc32, zipFiles } from '../../scripts/zip.mjs';

type Entry = { name: string; data: Uint8Array };
const zip = zipFiles as (entries: readonly Entry[]) => Buffer;
const crc = crc32 as (data: Uint8Array) => number;

async function withArchive(entries: readonly Entry[], check: (file: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'gcwal-zip-'));
  try {
    const file = path.join(dir, 'a.zip');
    await writeFile(file, zip(entries));
    await check(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const env = { PATH: process.env.PATH, LC_ALL: 'C.UTF-8' };

test('crc32 gives the standard check value', (t) => {
  t.is(crc(Buffer.from('123456789')), 0xcbf43926);
  t.is(crc(Buffer.alloc(0)), 0);
});

const CASES: { name: string; entries: Entry[] }[] = [
  {
    name: 'a bundle and its package.json',
    entries: [
      { name: 'index.mjs', data: Buffer.from('export const x = 1;\n'.repeat(1000)) },
      { name: 'package.json', data: Buffer.from('{"type":"module"}\n') },
    ],
  },
  { name: 'an empty file', entries: [{ name: 'empty', data: Buffer.alloc(0) }] },
  { name: 'incompressible data', entries: [{ name: 'random.bin', data: randomBytes(1024 * 1024 + 7) }] },
  {
    name: 'nested paths and a UTF-8 name',
    entries: [
      { name: 'a/b/c.txt', data: Buffer.from('c') },
      { name: 'über.txt', data: Buffer.from('ü') },
    ],
  },
];

for (const row of CASES) {
  test(`unzip reads back ${row.name} byte for byte`, async (t) => {
    await withArchive(row.entries, async (file) => {
      const tested = await exec('unzip', ['-t', file], { env });
      t.is(tested.code, 0, `${tested.stdout}${tested.stderr}`);
      const listing = await exec('unzip', ['-Z1', file], { env });
      t.deepEqual(
        listing.stdout.split('\n').filter(Boolean),
        row.entries.map((e) => e.name),
      );
      for (const entry of row.entries) {
        const out = await exec('sh', ['-c', 'unzip -p "$1" "$2" | od -An -v -tx1 | tr -d " \\n"', 'sh', file, entry.name], { env });
        t.is(out.stdout, Buffer.from(entry.data).toString('hex'), entry.name);
      }
    });
  });
}

test('the same files always make the same archive, with DOS-epoch timestamps', async (t) => {
  const entries = CASES[0].entries;
  t.deepEqual(zip(entries), zip(entries));
  await withArchive(entries, async (file) => {
    const listing = await exec('unzip', ['-l', file], { env });
    t.regex(listing.stdout, /1980-01-01 00:00\s+index\.mjs/);
  });
});

const BAD_NAMES: [string, Entry[]][] = [
  ['an absolute name', [{ name: '/etc/passwd', data: Buffer.alloc(1) }]],
  ['a name climbing out with ..', [{ name: 'a/../../x', data: Buffer.alloc(1) }]],
  ['a backslash', [{ name: 'a\\b', data: Buffer.alloc(1) }]],
  ['an empty name', [{ name: '', data: Buffer.alloc(1) }]],
  [
    'a duplicate name',
    [
      { name: 'x', data: Buffer.alloc(1) },
      { name: 'x', data: Buffer.alloc(2) },
    ],
  ],
];

for (const [what, entries] of BAD_NAMES) {
  test(`an archive with ${what} is refused`, (t) => {
    t.throws(() => zip(entries), { message: /^zip: / });
  });
}
