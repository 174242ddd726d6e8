import test from 'ava';
import { listPage, parseListQuery, type ListQuery } from '../../../local/gcs/list.ts';

const NAMES = ['a', 'a/', 'a/1', 'a/2', 'a/b/1', 'b', 'c/1', 'c/2', 'd'];

function query(params: string): ListQuery {
  return parseListQuery(new URLSearchParams(params));
}

const cases: { params: string; names: string[]; prefixes: string[] }[] = [
  { params: '', names: NAMES, prefixes: [] },
  { params: 'prefix=a/', names: ['a/', 'a/1', 'a/2', 'a/b/1'], prefixes: [] },
  { params: 'delimiter=/', names: ['a', 'b', 'd'], prefixes: ['a/', 'c/'] },
  { params: 'prefix=a/&delimiter=/', names: ['a/', 'a/1', 'a/2'], prefixes: ['a/b/'] },
  { params: 'delimiter=/&includeTrailingDelimiter=true', names: ['a', 'a/', 'b', 'd'], prefixes: ['a/', 'c/'] },
  { params: 'startOffset=a/2', names: ['a/2', 'a/b/1', 'b', 'c/1', 'c/2', 'd'], prefixes: [] },
  { params: 'endOffset=b', names: ['a', 'a/', 'a/1', 'a/2', 'a/b/1'], prefixes: [] },
  { params: 'startOffset=a/1&endOffset=c/2', names: ['a/1', 'a/2', 'a/b/1', 'b', 'c/1'], prefixes: [] },
  { params: 'prefix=c/&startOffset=a', names: ['c/1', 'c/2'], prefixes: [] },
  { params: 'prefix=zz', names: [], prefixes: [] },
  { params: 'delimiter=/1', names: ['a', 'a/', 'a/2', 'b', 'c/2', 'd'], prefixes: ['a/1', 'a/b/1', 'c/1'] },
];

for (const { params, names, prefixes } of cases) {
  test(`listing with "${params}" returns the right items and prefixes`, (t) => {
    const page = listPage(NAMES, query(params));
    t.deepEqual(page.names, names);
    t.deepEqual(page.prefixes, prefixes);
    t.is(page.nextPageToken, undefined);
  });
}

for (const params of ['', 'delimiter=/', 'prefix=a/&delimiter=/', 'delimiter=/&includeTrailingDelimiter=true', 'startOffset=a/&endOffset=d']) {
  for (const max of [1, 2, 3]) {
    test(`pages of ${max} with "${params}" add up to the unpaged listing`, (t) => {
      const whole = listPage(NAMES, query(params));
      const names: string[] = [];
      const prefixes: string[] = [];
      let token = '';
      for (let pages = 0; pages < 20; pages++) {
        const page = listPage(NAMES, query(`${params}&maxResults=${max}${token ? `&pageToken=${token}` : ''}`));
        // Items and prefixes both count; a trailing-delimiter object rides along with its prefix.
        t.true(page.prefixes.length + page.names.filter((n) => !page.prefixes.includes(n)).length <= max);
        names.push(...page.names);
        prefixes.push(...page.prefixes);
        if (!page.nextPageToken) break;
        token = page.nextPageToken;
      }
      t.deepEqual(names, whole.names);
      t.deepEqual(prefixes, whole.prefixes);
    });
  }
}

test('a page token resumes after its entry even when objects were added before it', (t) => {
  const first = listPage(NAMES, query('maxResults=3'));
  t.deepEqual(first.names, ['a', 'a/', 'a/1']);
  const grown = ['0', ...NAMES.slice(0, 3), 'a/0', ...NAMES.slice(3)];
  t.deepEqual(listPage(grown, query(`maxResults=3&pageToken=${first.nextPageToken}`)).names, ['a/2', 'a/b/1', 'b']);
});

test('bad maxResults and page tokens are 400 invalid', (t) => {
  for (const params of ['maxResults=0', 'maxResults=x', 'maxResults=-1']) {
    t.is(t.throws(() => query(params))?.message.startsWith('Invalid value for maxResults'), true);
  }
  t.is(query('maxResults=5000').maxResults, 1000);
  const err = t.throws(() => listPage(NAMES, query('pageToken=garbage')));
  t.is((err as { reason?: string }).reason, 'invalid');
});
