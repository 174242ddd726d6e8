import test from 'ava';
import { PassThrough } from 'node:stream';
import { createProgress, formatBytes, formatDuration } from '../../agent/progress.ts';

function sink() {
  const out = new PassThrough();
  let text = '';
  out.on('data', (c: Buffer) => (text += c.toString()));
  return { out, text: () => text };
}

const bytes: [number, string][] = [
  [0, '0 B'],
  [230.77, '231 B'],
  [1023, '1023 B'],
  [1024, '1.0 KiB'],
  [1536, '1.5 KiB'],
  [5 * 1024 ** 3, '5.0 GiB'],
];
for (const [n, text] of bytes) {
  test(`${n} bytes are shown as ${text}`, (t) => t.is(formatBytes(n), text));
}

const durations: [number, string][] = [
  [0, '0:00'],
  [59.6, '1:00'],
  [61, '1:01'],
  [3600, '1:00:00'],
  [3725, '1:02:05'],
];
for (const [s, text] of durations) {
  test(`${s} seconds are shown as ${text}`, (t) => t.is(formatDuration(s), text));
}

test('progress writes nothing when not interactive', (t) => {
  const s = sink();
  const p = createProgress({ out: s.out, interactive: false, totalBytes: 100, label: 'x' });
  p.add(50, 1);
  p.done();
  t.is(s.text(), '');
});

test('progress keeps one line up to date with bytes, rate, files and ETA, then ends it', (t) => {
  const s = sink();
  let now = 0;
  const p = createProgress({ out: s.out, interactive: true, totalBytes: 4 * 1024 * 1024, totalFiles: 4, label: 'backup b', now: () => now, intervalMs: 100 });
  const draws = () => s.text().split('\r').slice(1);
  now = 10;
  p.add(3);
  t.regex(draws()[0], /^\x1b\[2Kbackup b {2}3 B \/ 4\.0 MiB \(0%\) {2}300 B\/s {2}0\/4 files$/, 'no ETA in the first second');
  now = 50;
  p.add(1024 * 1024 - 3, 1); // within the interval: no redraw
  t.is(draws().length, 1);
  now = 1000;
  p.add(0, 0);
  t.regex(draws()[1], /^\x1b\[2Kbackup b {2}1\.0 MiB \/ 4\.0 MiB \(25%\) {2}1\.0 MiB\/s {2}1\/4 files {2}ETA 0:03$/);
  now = 4000;
  p.add(3 * 1024 * 1024, 3);
  p.done();
  t.regex(draws().at(-1)!, /4\.0 MiB \/ 4\.0 MiB \(100%\) .*4\/4 files {2}in 0:04\n$/);
  p.add(1); // after done: ignored
  t.true(s.text().endsWith('\n'));
});
