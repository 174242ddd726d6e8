/**
 * Child process for the file driver's directory-fsync test: writes one
 * small object, so that its system calls can be traced on their own.
 * Usage: node --import=tsx write-once.ts <repository url> <key>
 */
import { Readable } from 'node:stream';
import { FileStorage } from '../../../../core/storage/file/storage.ts';

const [url, key] = process.argv.slice(2);
await new FileStorage(url).write(key, Readable.from([Buffer.from('one object')]));
