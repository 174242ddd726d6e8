/**
 * A backup's verdict from its parts' verdicts (issue 15 part 2): each part
 * left its seal in the catalogue when it was validated, backup.json's check
 * left the seal each part must have (CatalogueBackup.awaiting); once every
 * part's verdict is known the backup is valid, or corrupt naming its first
 * bad part. Pure: it depends only on the catalogue it is given, so whichever
 * event comes last (a part's verdict or backup.json's) settles the backup,
 * the same way in any order.
 */
import { compareTimes } from './keys.ts';
import { backupPartKey } from '../layout.ts';
import type { CatalogueBackup, CataloguePartEntry } from './types.ts';

/**
 * `backup` settled when it is pending with `awaiting` and every part
 * (`part(key)`) has a verdict: a valid part with a seal, or a corrupt one.
 * Otherwise `backup` itself. A valid part without a seal (validated before
 * gcwal recorded seals) is waited for, as if pending, until it is validated
 * again. The settled backup's `validated` is the latest of the check's and
 * the parts' validation times.
 */
export function settleBackup(backup: CatalogueBackup, part: (key: string) => CataloguePartEntry | undefined): CatalogueBackup {
  const awaiting = backup.awaiting;
  if (!awaiting || backup.state !== 'pending') return backup;
  let latest = awaiting.checked;
  const bad: { index: number; key: string; why: string }[] = [];
  for (let i = 0; i < awaiting.seals.length; i++) {
    const key = backupPartKey(backup.name, i);
    const entry = part(key);
    if (!entry || entry.state === 'pending' || (entry.state === 'valid' && entry.seal === undefined)) return backup;
    if (entry.validated !== undefined && compareTimes(entry.validated, latest) > 0) latest = entry.validated;
    if (entry.state === 'corrupt') bad.push({ index: i, key, why: `failed validation (${entry.problem ?? 'no reason given'})` });
    else if (entry.seal !== awaiting.seals[i])
      bad.push({
        index: i,
        key,
        why: "does not hold what backup.json and the manifest record for it (its generation, decoded size and CRC32C, or its entries' names, types, sizes and CRC32Cs)",
      });
  }
  const { awaiting: _awaiting, problem: _problem, ...rest } = backup;
  if (bad.length === 0) return { ...rest, state: 'valid', validated: latest };
  const first = bad[0];
  const more = bad.length > 1 ? `; ${bad.length - 1} more of its ${awaiting.seals.length} parts are bad too` : '';
  return { ...rest, state: 'corrupt', problem: `part ${first.index} (${first.key}) of backup ${backup.name} ${first.why}${more}`, validated: latest };
}
