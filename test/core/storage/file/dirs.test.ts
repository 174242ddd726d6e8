/**
 * The file driver's modes and directory durability: a base backup holds
 * pg_authid, so nothing in a repository is for other users whatever the
 * umask; a directory created for a write is fsynced in its parent.
 */
import test, { type ExecutionContext } from 'ava';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, sep } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { FileStorage } from '../../../../core/storage/file/storage.ts';
import { exec } from '../../../../local/testkit/exec.ts';

const dirs: string[] = [];
async function fresh(): Promise<FileStorage> {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-file-dirs-'));
  dirs.push(dir);
  await mkdir(join(dir, 'repo'), { mode: 0o700 });
  return new FileStorage(pathToFileURL(join(dir, 'repo')).href);
}
test.after.always(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** Every path under `dir` with its permission bits. */
async function modes(dir: string): Promise<Map<string, { mode: number; directory: boolean }>> {
  const out = new Map<string, { mode: number; directory: boolean }>();
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const p = join(e.parentPath, e.name);
    const st = await stat(p);
    out.set(p, { mode: st.mode & 0o7777, directory: st.isDirectory() });
  }
  return out;
}

test('with umask 0 every file the driver writes is 0600 and every directory 0700', async (t) => {
  const previous = process.umask(0);
  try {
    const s = await fresh();
    await s.write('backups/base_1/part-00001.tar.lzo', Readable.from([Buffer.from('pg_authid lives here')]));
    const first = await s.write('catalogue/catalogue.json', Readable.from([Buffer.from('{}')]));
    await s.write('catalogue/catalogue.json', Readable.from([Buffer.from('{"v":2}')]), { ifGenerationMatch: first.generation });
    // Data without metadata, moved aside by the next create of its key.
    await mkdir(join(s.root, 'wal'), { mode: 0o700 });
    await writeFile(join(s.root, 'wal', 'orphan'), 'x', { mode: 0o600 });
    const old = new Date(Date.now() - 3_600_000);
    await utimes(join(s.root, 'wal', 'orphan'), old, old);
    await s.write('wal/orphan', Readable.from([Buffer.from('y')]));

    const found = await modes(s.root);
    t.true(found.size > 10);
    t.true([...found.keys()].some((p) => p.includes('.gcwal/orphaned')));
    for (const [p, { mode, directory }] of found) t.is(mode, directory ? 0o700 : 0o600, p);
  } finally {
    process.umask(previous);
  }
});

/** Which strace, if this machine has one that may trace (ptrace allowed). */
const strace = ['/usr/bin/strace', '/bin/strace'].find((p) => existsSync(p));

/** Run write-once.ts (`args`) under strace; the mkdir and fsync events, in order. */
async function traced(t: ExecutionContext, traceDir: string, args: string[]): Promise<TraceEvent[]> {
  const script = fileURLToPath(new URL('./write-once.ts', import.meta.url));
  const trace = join(traceDir, 'trace');
  const r = await exec(strace!, ['-f', '-qq', '-o', trace, '-e', 'trace=mkdir,mkdirat,openat,fsync,close', process.execPath, '--import=tsx', script, ...args], {
    env: process.env,
  });
  t.is(r.code, 0, r.stderr);
  return parseTrace(await readFile(trace, 'utf8'));
}

/** Each directory in `created` was fsynced in its parent after its mkdir. */
function assertParentsSynced(t: ExecutionContext, events: TraceEvent[], created: TraceEvent[]): void {
  for (const dir of created) {
    const synced = events.some((e) => e.call === 'fsync' && e.path === dirname(dir.path) && e.index > dir.index);
    t.true(synced, `${dirname(dir.path)} fsynced after mkdir ${dir.path}`);
  }
}

(strace ? test : test.skip)('every directory a write creates is fsynced in its parent after the mkdir (seen by strace)', async (t) => {
  const s = await fresh();
  const events = await traced(t, dirname(s.root), [s.url, 'wal/0000000100000001/000000010000000100000002']);
  const created = events.filter((e) => e.call === 'mkdir' && e.path.startsWith(s.root));
  // .gcwal, .gcwal/tmp, wal, wal/0000000100000001, .gcwal/meta, .gcwal/meta/wal, .gcwal/meta/wal/0000000100000001
  t.is(created.length, 7, created.map((e) => e.path).join(' '));
  assertParentsSynced(t, events, created);
});

(strace ? test : test.skip)('createRoot makes each missing level of the root and fsyncs it in its parent (seen by strace)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gcwal-file-dirs-'));
  dirs.push(dir);
  const root = join(dir, 'mnt', 'gcwal', 'repo');
  const events = await traced(t, dir, [pathToFileURL(root).href]);
  const created = events.filter((e) => e.call === 'mkdir' && e.path.startsWith(dir + sep));
  t.deepEqual(
    created.map((e) => e.path),
    [join(dir, 'mnt'), join(dir, 'mnt', 'gcwal'), root],
  );
  assertParentsSynced(t, events, created);
  for (const p of created) t.is((await stat(p.path)).mode & 0o777, 0o700, p.path);
});

interface TraceEvent {
  index: number;
  call: 'mkdir' | 'fsync';
  path: string;
}

/**
 * mkdir calls that succeeded and fsync calls with the path their file
 * descriptor was opened on, in order, from `strace -f` output (calls of
 * several threads may be split into "unfinished" and "resumed" lines).
 */
function parseTrace(text: string): TraceEvent[] {
  const fds = new Map<string, string>();
  const pendingOpen = new Map<string, string>();
  const pendingMkdir = new Map<string, string>();
  const events: TraceEvent[] = [];
  for (const line of text.split('\n')) {
    const pid = /^(\d+)\s/.exec(line)?.[1] ?? '';
    let m: RegExpExecArray | null;
    if ((m = /openat\([^,]+, "([^"]+)"[^)]*(?:\) += (\d+)|<unfinished)/.exec(line))) {
      if (m[2] !== undefined) fds.set(m[2], m[1]);
      else pendingOpen.set(pid, m[1]);
    } else if ((m = /<\.\.\. openat resumed>.*= (\d+)/.exec(line)) && pendingOpen.has(pid)) {
      fds.set(m[1], pendingOpen.get(pid)!);
    } else if ((m = /mkdir(?:at)?\((?:[^,]+, )?"([^"]+)", [0-7]+(?:\) += (-?\d+)|.*<unfinished)/.exec(line))) {
      if (m[2] === '0') events.push({ index: events.length, call: 'mkdir', path: m[1] });
      else if (m[2] === undefined) pendingMkdir.set(pid, m[1]);
    } else if ((m = /<\.\.\. mkdir(?:at)? resumed>.*= (-?\d+)/.exec(line)) && pendingMkdir.has(pid)) {
      if (m[1] === '0') events.push({ index: events.length, call: 'mkdir', path: pendingMkdir.get(pid)! });
    } else if ((m = /fsync\((\d+)/.exec(line)) && fds.has(m[1])) {
      events.push({ index: events.length, call: 'fsync', path: fds.get(m[1])! });
    }
  }
  return events;
}
