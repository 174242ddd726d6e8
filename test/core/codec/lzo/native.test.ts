import test from 'ava';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { loadLzoBlockCompressor, loadLzoBlockDecoder, lzoCompressBound, nativeBinding } from '../../../../core/codec/lzo/native.ts';
import { loadLzoWasm } from '../../../../core/codec/lzo/wasm.ts';

const require = createRequire(import.meta.url);
const lzo = require('lzo') as { compress(input: Buffer): Buffer; decompress(input: Buffer, length: number): Buffer };

const inputs: [string, Buffer][] = [
  ['zeros', Buffer.alloc(256 * 1024)],
  ['random bytes (incompressible)', randomBytes(256 * 1024)],
  ['a repeated text', Buffer.from('INSERT INTO pgbench_history VALUES (1, 2, 3); '.repeat(6000)).subarray(0, 256 * 1024)],
  ['a short block', Buffer.from('tail of a file')],
  ['one byte', Buffer.from([7])],
];

test("the package's native binding is found, so blocks compress without the package's per-call allocation", (t) => {
  t.truthy(nativeBinding());
});

test('the binding is loaded straight from where npm builds it, the very module the package loads', (t) => {
  const built = path.join(path.dirname(require.resolve('lzo/package.json')), 'build', 'Release', 'node_lzo.node');
  t.is(nativeBinding(), require(built));
});

for (const [what, input] of inputs) {
  test(`compressing ${what} into a caller's buffer gives the package's bytes and touches nothing around them`, (t) => {
    const compress = loadLzoBlockCompressor();
    const room = lzoCompressBound(input.length);
    const slab = Buffer.alloc(room + 64, 0xa5);
    const length = compress(input, slab.subarray(32, 32 + room));
    const expected = lzo.compress(input);
    t.is(length, expected.length);
    t.deepEqual(slab.subarray(32, 32 + length), expected);
    t.true(
      slab.subarray(0, 32).every((b) => b === 0xa5),
      'nothing written before the output',
    );
    t.true(
      slab.subarray(32 + room).every((b) => b === 0xa5),
      'nothing written after the room given',
    );
    t.deepEqual(lzo.decompress(slab.subarray(32, 32 + length), input.length), input);
  });
}

test('an output buffer smaller than the worst case is refused before compressing', (t) => {
  const compress = loadLzoBlockCompressor();
  const input = randomBytes(4096);
  t.throws(() => compress(input, Buffer.alloc(lzoCompressBound(input.length) - 1)), { instanceOf: RangeError, message: /too small/ });
});

for (const [what, input] of inputs) {
  test(`the native decoder restores ${what} exactly as the wasm decoder does`, async (t) => {
    const packed = lzo.compress(input);
    const native = loadLzoBlockDecoder();
    if (!native) return t.fail('no native decoder');
    t.deepEqual(native.decode(packed, input.length), input);
    t.deepEqual((await loadLzoWasm()).decode(packed, input.length), input);
  });
}

test('the native decoder refuses a damaged block, a block cut short and a wrong length, and stays usable', (t) => {
  const native = loadLzoBlockDecoder()!;
  const input = inputs[2]![1];
  const packed = lzo.compress(input);
  t.throws(() => native.decode(packed.subarray(0, packed.length - 10), input.length));
  t.throws(() => native.decode(packed, input.length + 1), { message: /^failed to decompress: the block decodes to/ });
  t.throws(() => native.decode(packed, input.length - 1));
  const garbage = Buffer.from(packed);
  garbage.fill(0xff, 0, 16);
  t.throws(() => native.decode(garbage, input.length));
  t.true(native.usable);
  t.deepEqual(native.decode(packed, input.length), input);
});
