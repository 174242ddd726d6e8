// Preload (node --require) that makes every native addon fail to load, as on
// a runtime where none was built: validation must still work without them.
const Module = require('node:module');
Module._extensions['.node'] = (module, filename) => {
  throw new Error(`native addons are disabled in this process (${require('node:path').basename(filename)})`);
};
