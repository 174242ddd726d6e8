/**
 * Codec lookup. Importing this module loads no native code: each codec
 * requires its library (lzo, lzo-wasm, zstd-napi) the first time it is used,
 * which keeps the CLI's start-up fast.
 */
import { CorruptObjectError } from '../errors.ts';
import { Meta } from '../layout.ts';
import { gzipCodec } from './gzip.ts';
import { lzoCodec } from './lzo/lzop.ts';
import { noneCodec } from './none.ts';
import { CODEC_NAMES, type Codec, type CodecName } from './types.ts';
import { zstdCodec } from './zstd.ts';

export type { Codec, CodecName } from './types.ts';

/** Whether `text` is the name of a codec gcwal knows. */
export function isCodecName(text: string): text is CodecName {
  return (CODEC_NAMES as readonly string[]).includes(text);
}

/**
 * A new instance of the codec `name`. Instances keep lazily created decoder
 * state (the lzo wasm module); reuse one instance for many objects.
 */
export function getCodec(name: CodecName): Codec {
  switch (name) {
    case 'lzo':
      return lzoCodec();
    case 'zstd':
      return zstdCodec();
    case 'gzip':
      return gzipCodec();
    case 'none':
      return noneCodec();
  }
}

/**
 * The codec named by an object's `gcwal-codec` metadata. `where` names the
 * object in messages (its key). Throws CorruptObjectError when the name is
 * missing or not one gcwal knows.
 */
export function codecFromName(text: string | undefined, where: string): Codec {
  if (text === undefined || text === '') {
    throw new CorruptObjectError(
      `object ${where} has no ${Meta.codec} metadata`,
      'the object was not written by gcwal, or its metadata was lost; re-archive it',
    );
  }
  if (!isCodecName(text)) {
    throw new CorruptObjectError(
      `object ${where} names unknown codec ${JSON.stringify(text)} in its ${Meta.codec} metadata`,
      `upgrade gcwal, or check the object; known codecs: ${CODEC_NAMES.join(', ')}`,
    );
  }
  return getCodec(text);
}
