/**
 * Validate WAL objects in a fresh process and print the results and which
 * native or codec modules got loaded, as JSON: `probe.ts <repo url> <key>...`.
 * Run with no-native.cjs preloaded to see validation without native addons.
 */
import { createRequire } from 'node:module';
import { FileStorage } from '../../../core/storage/file/storage.ts';
import { validateWalObject } from '../../../core/validate/index.ts';
import { crc32c } from '../../../core/checksum/crc32c.ts';

const require = createRequire(import.meta.url);
const [url, ...keys] = process.argv.slice(2);
const storage = new FileStorage(url!);
const results: Record<string, unknown> = {};
for (const key of keys) {
  const info = await storage.stat(key);
  results[key] = await validateWalObject(storage, info!);
}
const loaded = Object.keys(require.cache)
  .map((file) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(file)?.[1])
  .filter((name): name is string => name !== undefined);
// fast-crc32c picks its implementation when first required: which one is it?
const crc = require('fast-crc32c') as { calculate: unknown };
const sse = (() => {
  try {
    return require('fast-crc32c/impls/sse4_crc32c.js') as { calculate: unknown };
  } catch {
    return undefined;
  }
})();
process.stdout.write(
  JSON.stringify({
    results,
    packages: [...new Set(loaded)].sort(),
    crc32c: crc.calculate === sse?.calculate ? 'sse4' : 'javascript',
    check: crc32c(Buffer.from('123456789')),
  }),
);
