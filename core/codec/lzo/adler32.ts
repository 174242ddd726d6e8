/**
 * Adler-32 (RFC 1950), the checksum lzop stores for its header and blocks by
 * default. Node has no native Adler-32, so this is a tight JavaScript loop,
 * still faster than the LZO codec itself (docs/performance.md).
 */

const MOD = 65521;

// Sums stay int32 (V8's fast path) as long as they are reduced at least every
// 3800 bytes: starting below MOD, b grows by at most n*65520 + 255*n*(n+1)/2,
// which for n = 3800 is just under 2^31.
const RUN = 3800;

/**
 * Adler-32 of `data`, unsigned. `initial` continues a previous result
 * (default 1, the Adler-32 of no bytes):
 * `adler32(b, adler32(a)) === adler32(concat(a, b))`.
 */
export function adler32(data: Uint8Array, initial = 1): number {
  let a = initial & 0xffff;
  let b = (initial >>> 16) & 0xffff;
  const n = data.length;
  let i = 0;
  while (i < n) {
    const end = Math.min(i + RUN, n);
    for (; i < end; i++) {
      a = (a + data[i]) | 0;
      b = (b + a) | 0;
    }
    a %= MOD;
    b %= MOD;
  }
  return ((b << 16) | a) >>> 0;
}
