/**
 * Where `gcwal status` and `gcwal delete` get their picture of the archive:
 * the pipeline's catalogue when there is one (one read, no listing), or else
 * a catalogue built by listing the repository, in which nothing is
 * validated. Both commands say which one they used.
 */
import { buildCatalogueFromListing } from '../../core/catalogue/listing.ts';
import { readCatalogue } from '../../core/catalogue/store.ts';
import type { Catalogue } from '../../core/catalogue/types.ts';
import { CATALOGUE_KEY } from '../../core/layout.ts';
import { openStorage } from '../../core/storage/open.ts';
import type { Storage } from '../../core/storage/types.ts';
import { checkRepoUrl, gcsStorageOptions } from '../config.ts';
import type { CommandContext } from '../context.ts';
import { requireRepositoryIdentity } from '../../core/repository.ts';

/** The catalogue a command works from, and where it came from. */
export interface LoadedCatalogue {
  catalogue: Catalogue;
  /**
   * `catalogue`: the pipeline's catalogue object, with its validation states.
   * `listing`: none exists; built from a listing of the repository, every
   * object unvalidated (`pending`).
   */
  source: 'catalogue' | 'listing';
  /** the catalogue object's URL (also when it did not exist) */
  location: string;
  /** its generation; `'0'` for a listing */
  generation: string;
}

/**
 * The storage holding the catalogue: the repository itself, or the one
 * GCWAL_CATALOGUE_REPO names (opened with the same Cloud Storage settings
 * the CLI gives the repository).
 */
export async function catalogueStorage(ctx: Pick<CommandContext, 'config' | 'storage'>): Promise<Storage> {
  const repo = await ctx.storage();
  const url = ctx.config.catalogueRepo;
  if (url === undefined || url.replace(/\/+$/, '') === repo.url.replace(/\/+$/, '')) return repo;
  return openStorage(checkRepoUrl(url, 'GCWAL_CATALOGUE_REPO', 'e.g. GCWAL_CATALOGUE_REPO=gs://my-catalogue-bucket/prod-db'), {
    gcs: gcsStorageOptions(ctx.config),
  });
}

/**
 * Read the pipeline's catalogue; when there is none, say so on the log and
 * build one by listing the repository (`source: 'listing'`). Never lists
 * when the catalogue exists. Throws what the storage throws, and
 * CorruptObjectError for a catalogue that does not parse (a damaged
 * catalogue is not silently replaced by a listing), RepositoryMissingError
 * when the repository has no gcwal.json.
 */
export async function loadCatalogue(ctx: Pick<CommandContext, 'config' | 'storage' | 'log' | 'signal'>, now: Date): Promise<LoadedCatalogue> {
  // A repository that was never created (a typo, an unmounted volume) is an
  // error, not an empty report: RepositoryMissingError.
  await requireRepositoryIdentity(await ctx.storage(), { signal: ctx.signal });
  const store = await catalogueStorage(ctx);
  const location = `${store.url.replace(/\/+$/, '')}/${CATALOGUE_KEY}`;
  const read = await readCatalogue(store, { signal: ctx.signal, now: () => now });
  if (read.generation !== '0') return { catalogue: read.catalogue, source: 'catalogue', location, generation: read.generation };
  const repo = await ctx.storage();
  ctx.log.info(`no catalogue at ${location} (the pipeline's functions keep one); listing ${repo.url} instead: nothing in it is validated`);
  const catalogue = await buildCatalogueFromListing(repo, { signal: ctx.signal, now });
  return { catalogue, source: 'listing', location, generation: '0' };
}
