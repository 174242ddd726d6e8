import pkg from '../package.json' with { type: 'json' };

/** gcwal's version from package.json (inlined into the bundle at build time). */
export const VERSION: string = pkg.version;
