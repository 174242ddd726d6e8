// Loaded into the gcwal CLI under test with NODE_OPTIONS=--import=<this file>
// by the kill -9 harness (kill.ts). It counts the steps that change or
// publish state: file system calls that create, rename, link, remove or
// fsync, and HTTP requests (each one a Cloud Storage call). A kill at a random
// moment seldom lands in a window of a few milliseconds, such as the one
// between linking a file:// object's data and renaming its sidecar; a kill
// just before a random step lands in every such window as often as in any.
//
// CRASH_AT_STEP=k: SIGKILL this process just before its k-th step (as kill -9
// from outside would; nothing runs after it). CRASH_STEPS_FILE=path: write
// the number of steps taken there at exit, so the harness knows the range.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { syncBuiltinESMExports } from 'node:module';

const at = Number(process.env.CRASH_AT_STEP ?? 0);
const stepsFile = process.env.CRASH_STEPS_FILE;
let steps = 0;

function step() {
  steps++;
  if (steps === at) process.kill(process.pid, 'SIGKILL');
}

function counted(target, names) {
  for (const name of names) {
    const original = target[name];
    if (typeof original !== 'function') continue;
    target[name] = function (...args) {
      step();
      return original.apply(this, args);
    };
  }
}

const mutations = ['rename', 'link', 'unlink', 'rm', 'rmdir', 'mkdir', 'symlink', 'copyFile', 'chmod', 'truncate'];
counted(fsp, [...mutations, 'writeFile', 'appendFile']);
counted(fs, [...mutations.map((n) => `${n}Sync`), 'fsyncSync', 'fdatasyncSync', 'writeFileSync']);
// fsync and the opening of a file for writing go through FileHandle.
const handle = await fsp.open('/dev/null', 'r');
const FileHandle = Object.getPrototypeOf(handle);
await handle.close();
counted(FileHandle, ['sync', 'datasync']);
const open = fsp.open;
fsp.open = function (file, flags, ...rest) {
  if (typeof flags === 'string' && /[wax+]/.test(flags)) step();
  else if (typeof flags === 'number' && (flags & (fs.constants.O_WRONLY | fs.constants.O_RDWR | fs.constants.O_CREAT)) !== 0) step();
  return open.call(this, file, flags, ...rest);
};
counted(http, ['request']);
counted(https, ['request']);
syncBuiltinESMExports();

if (stepsFile) process.on('exit', () => fs.writeFileSync(stepsFile, String(steps)));
