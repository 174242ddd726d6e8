import test from 'ava';
import { wantsLzopHelper } from '../../../agent/wal/helper.ts';

const rows: { name: string; codec: string; level: unknown; cpus: number; expected: boolean }[] = [
  { name: 'lzo at its one level on two CPUs uses the helper', codec: 'lzo', level: undefined, cpus: 2, expected: true },
  { name: 'one CPU has no second thread to give', codec: 'lzo', level: undefined, cpus: 1, expected: false },
  { name: 'a level set for lzo leaves the helper out, as for the other codecs', codec: 'lzo', level: 1, cpus: 8, expected: false },
  { name: 'zstd compresses on one thread', codec: 'zstd', level: undefined, cpus: 8, expected: false },
  { name: 'no compression needs no helper', codec: 'none', level: undefined, cpus: 8, expected: false },
];

for (const row of rows) {
  test(row.name, (t) => {
    t.is(wantsLzopHelper(row.codec, row.level, row.cpus), row.expected);
  });
}
