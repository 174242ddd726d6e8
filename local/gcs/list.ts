/**
 * Object listing as GCS does it, as a pure function over the sorted names of
 * a bucket: prefix, delimiter (collapsing names into `prefixes`),
 * startOffset (inclusive), endOffset (exclusive), includeTrailingDelimiter,
 * and pages of at most maxResults entries, where items and prefixes both
 * count. The page token is opaque to clients; it encodes the last entry
 * returned so a listing resumes after it even when objects come and go.
 */
import { invalid } from './errors.ts';
import { lowerBound } from './store.ts';

/** The query parameters of objects.list that shape the result. */
export interface ListQuery {
  prefix: string;
  delimiter: string;
  startOffset: string;
  endOffset: string;
  includeTrailingDelimiter: boolean;
  maxResults: number;
  pageToken: string;
}

/** One page: object names to return as items, collapsed prefixes, and the token for the next page. */
export interface ListPage {
  names: string[];
  prefixes: string[];
  nextPageToken?: string;
}

/** GCS's cap (and default) for maxResults. */
export const MAX_RESULTS = 1000;

/** Read a ListQuery from the request's query string; 400 on a bad maxResults. */
export function parseListQuery(query: URLSearchParams): ListQuery {
  const max = query.get('maxResults');
  let maxResults = MAX_RESULTS;
  if (max !== null && max !== '') {
    if (!/^\d+$/.test(max) || Number(max) < 1) throw invalid(`Invalid value for maxResults: ${max}`);
    maxResults = Math.min(Number(max), MAX_RESULTS);
  }
  return {
    prefix: query.get('prefix') ?? '',
    delimiter: query.get('delimiter') ?? '',
    startOffset: query.get('startOffset') ?? '',
    endOffset: query.get('endOffset') ?? '',
    includeTrailingDelimiter: query.get('includeTrailingDelimiter') === 'true' || query.get('includeTrailingDelimiter') === 'True',
    maxResults,
    pageToken: query.get('pageToken') ?? '',
  };
}

interface Token {
  /** the last entry returned */
  k: string;
  /** whether it was a prefix (then everything under it is skipped too) */
  p: boolean;
}

function encodeToken(token: Token): string {
  return Buffer.from(JSON.stringify(token)).toString('base64url');
}

function decodeToken(text: string): Token {
  try {
    const token = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as Token;
    if (typeof token.k === 'string' && typeof token.p === 'boolean') return token;
  } catch {
    // fall through
  }
  throw invalid(`Invalid pageToken: ${text}`);
}

/** Compute one page of a listing over `names` (ascending). */
export function listPage(names: readonly string[], query: ListQuery): ListPage {
  const { prefix, delimiter, endOffset, includeTrailingDelimiter, maxResults } = query;
  const after = query.pageToken ? decodeToken(query.pageToken) : undefined;
  let start = prefix;
  if (query.startOffset > start) start = query.startOffset;
  let i = lowerBound(names, start);
  const page: ListPage = { names: [], prefixes: [] };
  let count = 0;
  let last: Token | undefined;

  for (; i < names.length; i++) {
    const name = names[i];
    if (!name.startsWith(prefix)) {
      if (name > prefix) break;
      continue;
    }
    if (endOffset !== '' && name >= endOffset) break;
    if (after) {
      if (name < after.k || name === after.k) continue;
      if (after.p && name.startsWith(after.k)) continue;
    }
    let collapsed: string | undefined;
    if (delimiter !== '') {
      const at = name.indexOf(delimiter, prefix.length);
      if (at >= 0) collapsed = name.slice(0, at + delimiter.length);
    }
    if (collapsed !== undefined) {
      const addItem = includeTrailingDelimiter && name === collapsed;
      if (last?.p && last.k === collapsed) {
        // Same prefix as the entry just added: only a trailing-delimiter object can still be added.
        if (!addItem) continue;
      } else {
        if (count === maxResults) {
          page.nextPageToken = encodeToken(last!);
          return page;
        }
        page.prefixes.push(collapsed);
        count++;
        last = { k: collapsed, p: true };
        // The object named exactly like the prefix sorts first under it and is returned with it.
      }
      if (addItem) page.names.push(name);
      continue;
    }
    if (count === maxResults) {
      page.nextPageToken = encodeToken(last!);
      return page;
    }
    page.names.push(name);
    count++;
    last = { k: name, p: false };
  }
  return page;
}
