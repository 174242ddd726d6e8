/**
 * Child process for the file driver's directory-fsync tests: writes one
 * small object, or with no key creates the repository's root directory
 * (createRoot, as repo-create does), so that its system calls can be traced
 * on their own.
 * Usage: node --import=tsx write-once.ts <repository url> [<key>]
 */
import { Readable } from 'node:stream';
import { FileStorage } from '../../../../core/storage/file/storage.ts';

const [url, key] = process.argv.slice(2);
const storage = new FileStorage(url);
if (key === undefined) await storage.createRoot();
else await storage.write(key, Readable.from([Buffer.from('one object')]));
