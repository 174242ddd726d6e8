/**
 * Comments point only to files inside the repository: a comment naming a web
 * page or a file elsewhere on some machine sends the reader where the
 * repository cannot keep it current. Addresses in code (an endpoint, a scope,
 * an error text copied from Cloud Storage) are values, not pointers, and are
 * not comments.
 */

import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const root = fileURLToPath(new URL('../../', import.meta.url));
const SOURCES = ['agent', 'core', 'functions', 'local', 'scripts', 'bench'];
const EXTENSIONS = /\.(ts|mts|mjs|cjs|js|sh)$/;

async function* files(dir: string): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* files(full);
    else if (EXTENSIONS.test(entry.name)) yield full;
  }
}

/** The comment text of a line: a whole-line comment, or what follows ` // `. */
function commentOf(line: string): string | undefined {
  const trimmed = line.trim();
  if (/^(\/\/|\/\*|\*|#(?!!))/.test(trimmed)) return trimmed;
  const trailing = line.indexOf(' // ');
  return trailing >= 0 ? line.slice(trailing) : undefined;
}

/** A web address other than loopback, or a path into the shared folders beside the checkout (/work/shared, /tmp/team). */
const OUTSIDE = /\bhttps?:\/\/(?!127\.0\.0\.1|localhost|\[::1\])|(?:^|[\s(`'"])\/(?:work|farm)\/|\/tmp\/team\b/;

/** A document a comment names: `docs/performance.md`, `README.md`, `GCS-API.md`. */
const DOCUMENT = /[\w./-]*\.md\b/g;

/** Whether `name`, from a comment in `file`, is a document of the repository: from the root, beside the file, or up its folders. */
function inRepository(name: string, file: string): boolean {
  for (let dir = path.dirname(file); `${dir}/`.startsWith(root); dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, name))) return true;
  }
  return false;
}

test('no comment in the sources points to a web page or to a file outside the repository', async (t) => {
  const found: string[] = [];
  let scanned = 0;
  for (const dir of SOURCES) {
    for await (const file of files(path.join(root, dir))) {
      scanned++;
      const lines = (await readFile(file, 'utf8')).split('\n');
      lines.forEach((line, i) => {
        const comment = commentOf(line);
        if (!comment) return;
        const missing = [...comment.matchAll(DOCUMENT)].map((m) => m[0]).filter((name) => !inRepository(name, file));
        if (OUTSIDE.test(comment) || missing.length > 0) found.push(`${path.relative(root, file)}:${i + 1}: ${comment.trim()}`);
      });
    }
  }
  t.true(scanned > 100, `only ${scanned} files scanned`);
  t.deepEqual(found, []);
});
