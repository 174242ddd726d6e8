/**
 * The documents as a user navigates them: the README links every page of
 * docs/, and every relative link of the README, docs/ and the folders' READMEs
 * reaches a file of the repository (and, with a #fragment, a heading of it),
 * so a file moved or a heading renamed without its links fails here.
 */

import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** The documents whose links are checked, relative to the root: the README, docs/, and the README of any source folder. */
async function documents(): Promise<string[]> {
  const pages = (await readdir(path.join(root, 'docs'))).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`);
  const folders: string[] = [];
  for (const top of ['agent', 'core', 'functions', 'local', 'bench']) {
    for (const entry of await readdir(path.join(root, top), { recursive: true })) {
      if (path.basename(entry) === 'README.md') folders.push(`${top}/${entry}`);
    }
  }
  return ['README.md', ...pages.sort(), ...folders.sort()];
}

/** Markdown links outside fenced code: [text](target). */
function links(markdown: string): string[] {
  const prose = markdown.replace(/^```[^\n]*\n[\s\S]*?^```/gm, '');
  return [...prose.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!);
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
function anchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

async function anchors(file: string): Promise<Set<string>> {
  const text = (await readFile(file, 'utf8')).replace(/^```[^\n]*\n[\s\S]*?^```/gm, '');
  return new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchor(m[1]!)));
}

test('every page of docs/ is linked from README.md', async (t) => {
  const linked = new Set(links(await readFile(path.join(root, 'README.md'), 'utf8')).map((l) => l.split('#')[0]));
  const pages = (await documents()).filter((f) => f.startsWith('docs/'));
  t.true(pages.length > 0);
  for (const page of pages) t.true(linked.has(page), `README.md does not link ${page}`);
});

test("every relative link of README.md, docs/ and the source folders' READMEs reaches a file of the repository and a heading of it", async (t) => {
  let checked = 0;
  for (const doc of await documents()) {
    for (const link of links(await readFile(path.join(root, doc), 'utf8'))) {
      if (/^[a-z]+:/i.test(link)) continue;
      const [target, fragment] = link.split('#') as [string, string | undefined];
      const file = target === '' ? path.join(root, doc) : path.resolve(root, path.dirname(doc), decodeURIComponent(target));
      t.true(file.startsWith(root), `${doc}: ${link} points outside the repository`);
      t.true(existsSync(file), `${doc}: ${link} names no file`);
      if (fragment && file.endsWith('.md') && existsSync(file))
        t.true((await anchors(file)).has(fragment), `${doc}: ${link} names no heading of ${path.relative(root, file)}`);
      checked++;
    }
  }
  t.true(checked > 20, `only ${checked} links checked`);
});

/** Paths of the repository named in prose: `agent/wal/README.md`, core/storage/gcs/ (not /usr/local/bin, nor gs://bucket/local/x). */
const REPO_PATH = /(?<![\w/.-])(?:agent|core|functions|local|scripts|bench|test|terraform|docs)\/[\w./-]*[\w/]/g;

test('every path of the repository the documents name outside code blocks exists', async (t) => {
  const missing: string[] = [];
  for (const doc of await documents()) {
    const prose = (await readFile(path.join(root, doc), 'utf8')).replace(/^```[^\n]*\n[\s\S]*?^```/gm, '');
    for (const [name] of prose.matchAll(REPO_PATH)) {
      if (!existsSync(path.join(root, name))) missing.push(`${doc}: ${name}`);
    }
  }
  t.deepEqual(missing, []);
});

test('the README stays a front page: under 12 KB, with the two quick-start commands', async (t) => {
  const readme = await readFile(path.join(root, 'README.md'));
  t.true(readme.length < 12 * 1024, `README.md is ${readme.length} bytes`);
  const quickStart = readme.toString('utf8').split('\n## ')[1] ?? '';
  t.regex(quickStart, /^Quick start\n/);
  t.regex(quickStart, /\nnpm ci && npm run demo +#/);
  t.regex(quickStart, /\nnpm test +#/);
});
