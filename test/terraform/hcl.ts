/**
 * Test helpers: read the Terraform configuration under terraform/ as JSON
 * (HashiCorp's HCL parser compiled to wasm, @cdktf/hcl2json), so tests can
 * check it against the code without the Google provider, which cannot be
 * downloaded here.
 *
 * hcl2json keeps expressions as `${...}` strings and blocks as arrays of
 * bodies; these helpers merge a module's files and find references in them.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getReferencesInExpression, parse } from '@cdktf/hcl2json';

/** The repository root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The Terraform root module. */
export const TERRAFORM_DIR = path.join(ROOT, 'terraform');

/** A block body as hcl2json returns it. */
export type Body = Record<string, unknown>;

/** One module directory, its files merged. */
export interface TfModule {
  /** absolute directory */
  dir: string;
  /** directory relative to the repository root, for messages */
  rel: string;
  variables: Map<string, Body>;
  locals: Map<string, unknown>;
  outputs: Map<string, Body>;
  /** `type.name` → body */
  resources: Map<string, Body>;
  /** `data.type.name` → body */
  data: Map<string, Body>;
  modules: Map<string, Body>;
  /** every top-level `terraform` block */
  terraform: Body[];
  /** each file's parsed JSON, for walking every expression */
  files: { file: string; json: Record<string, unknown> }[];
}

function first(value: unknown): Body {
  return (Array.isArray(value) ? value[0] : value) as Body;
}

/** Parse every `*.tf` file in `dir` (not recursive) into one module. */
export async function loadModule(dir: string): Promise<TfModule> {
  const names = (await readdir(dir)).filter((name) => name.endsWith('.tf')).sort();
  const mod: TfModule = {
    dir,
    rel: path.relative(ROOT, dir),
    variables: new Map(),
    locals: new Map(),
    outputs: new Map(),
    resources: new Map(),
    data: new Map(),
    modules: new Map(),
    terraform: [],
    files: [],
  };
  for (const name of names) {
    const json = (await parse(name, await readFile(path.join(dir, name), 'utf8'))) as Record<string, unknown>;
    mod.files.push({ file: name, json });
    for (const [key, body] of Object.entries((json.variable ?? {}) as Record<string, unknown>)) mod.variables.set(key, first(body));
    for (const [key, body] of Object.entries((json.output ?? {}) as Record<string, unknown>)) mod.outputs.set(key, first(body));
    for (const [key, body] of Object.entries((json.module ?? {}) as Record<string, unknown>)) mod.modules.set(key, first(body));
    for (const block of (json.locals ?? []) as Body[]) for (const [key, value] of Object.entries(block)) mod.locals.set(key, value);
    for (const [type, byName] of Object.entries((json.resource ?? {}) as Record<string, Record<string, unknown>>)) {
      for (const [key, body] of Object.entries(byName)) mod.resources.set(`${type}.${key}`, first(body));
    }
    for (const [type, byName] of Object.entries((json.data ?? {}) as Record<string, Record<string, unknown>>)) {
      for (const [key, body] of Object.entries(byName)) mod.data.set(`data.${type}.${key}`, first(body));
    }
    for (const block of (json.terraform ?? []) as Body[]) mod.terraform.push(block);
  }
  return mod;
}

/** Subdirectories of `dir` (sorted). */
async function subdirs(dir: string): Promise<string[]> {
  return (await readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => path.join(dir, e.name))
    .sort();
}

/** The root module, every sub-module under modules/ and every example under examples/. */
export async function loadAllModules(): Promise<TfModule[]> {
  const dirs = [TERRAFORM_DIR, ...(await subdirs(path.join(TERRAFORM_DIR, 'modules'))), ...(await subdirs(path.join(TERRAFORM_DIR, 'examples')))];
  return Promise.all(dirs.map(loadModule));
}

/** Every string anywhere inside `value`, with a path for messages. */
export function* strings(value: unknown, where = ''): Generator<{ where: string; text: string }> {
  if (typeof value === 'string') yield { where, text: value };
  else if (Array.isArray(value)) for (const [i, item] of value.entries()) yield* strings(item, `${where}[${i}]`);
  else if (value && typeof value === 'object') for (const [key, item] of Object.entries(value)) yield* strings(item, where ? `${where}.${key}` : key);
}

/** One reference found in a module, e.g. `var.bucket_name` in `main.tf resource...name`. */
export interface FoundReference {
  value: string;
  file: string;
  where: string;
}

/**
 * hcl2json gives a template back unquoted (`a "b" ${x}`); the reference
 * finder wants HCL source. Quote it: escape quotes, backslashes and newlines
 * in the literal parts, copy `${...}` and `%{...}` sequences as they are.
 */
export function toHclString(text: string): string {
  let out = '"';
  let i = 0;
  while (i < text.length) {
    if (text.startsWith('${', i) || text.startsWith('%{', i)) {
      let j = i + 2;
      let depth = 1;
      let inString = false;
      while (j < text.length && depth > 0) {
        const c = text[j];
        if (inString) {
          if (c === '\\') j++;
          else if (c === '"') inString = false;
        } else if (c === '"') inString = true;
        else if (c === '{') depth++;
        else if (c === '}') depth--;
        j++;
      }
      out += text.slice(i, j);
      i = j;
    } else {
      const c = text[i];
      out += c === '"' ? '\\"' : c === '\\' ? '\\\\' : c === '\n' ? '\\n' : c;
      i++;
    }
  }
  return out + '"';
}

/** Every reference (var.x, local.x, module.x.y, type.name...) in every expression of `mod`. */
export async function references(mod: TfModule): Promise<FoundReference[]> {
  const found: FoundReference[] = [];
  for (const { file, json } of mod.files) {
    for (const { where, text } of strings(json)) {
      if (!text.includes('${') && !text.includes('%{')) continue;
      // a variable's type constraint (`${list(string)}`) names types, not objects
      if (/^variable\.[^.]+\[\d+\]\.type$/.test(where)) continue;
      for (const ref of await getReferencesInExpression(file, toHclString(text))) found.push({ value: ref.value, file, where });
    }
  }
  return found;
}

/** Names of the dynamic blocks in `mod` (their iterators look like references: `event_filters.value`). */
export function dynamicBlockNames(mod: TfModule): Set<string> {
  const names = new Set<string>();
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === 'object') {
      for (const [key, item] of Object.entries(value)) {
        if (key === 'dynamic' && item && typeof item === 'object') for (const name of Object.keys(item)) names.add(name);
        walk(item);
      }
    }
  };
  for (const { json } of mod.files) walk(json);
  return names;
}

/** The expression inside a whole-string interpolation `${...}`, or undefined for a literal or a template. */
export function expressionOf(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^\$\{([\s\S]*)\}$/.exec(value);
  return m && !m[1].includes('${') ? m[1].trim() : undefined;
}

/**
 * Follow `${local.a.b}` through the module's locals (repeatedly); literals are
 * returned as they are. Anything else (a function call, a variable) is
 * returned unresolved, as its `${...}` string.
 */
export function resolveLocal(mod: TfModule, value: unknown, depth = 0): unknown {
  const expr = expressionOf(value);
  const m = expr === undefined ? null : /^local\.([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+)*)$/.exec(expr);
  if (!m || depth > 10) return value;
  let current: unknown = mod.locals.get(m[1]);
  for (const key of m[2].split('.').filter(Boolean)) {
    current = (current as Record<string, unknown> | undefined)?.[key];
  }
  return current === undefined ? value : resolveLocal(mod, current, depth + 1);
}

/** `body.block[0].block2[0]...` for nested single blocks; undefined when absent. */
export function block(body: unknown, ...names: string[]): Body | undefined {
  let current = body as Body | undefined;
  for (const name of names) {
    const next = current?.[name];
    current = Array.isArray(next) ? (next[0] as Body | undefined) : (next as Body | undefined);
  }
  return current;
}

/** The module in `all` whose directory is `rel` (relative to the repository root); throws when absent. */
export function moduleAt(all: readonly TfModule[], rel: string): TfModule {
  const found = all.find((mod) => mod.rel === rel);
  if (!found) throw new Error(`no terraform module at ${rel}`);
  return found;
}
