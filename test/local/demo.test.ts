/** `npm run demo` is the first command of the README's quick start: it must keep working, pipeline included. */
import test from 'ava';
import path from 'node:path';
import { exec } from '../../local/testkit/exec.ts';
import { projectRoot } from '../../local/testkit/install.ts';

test('the demo archives to gs://, sees it validated, restores to the point before the disaster, reports a match and hears about a damaged segment', async (t) => {
  const started = Date.now();
  const r = await exec(process.execPath, ['--import=tsx', path.join(projectRoot, 'local', 'demo.ts')], { cwd: projectRoot, timeoutMs: 240_000 });
  t.log(`demo ran ${((Date.now() - started) / 1000).toFixed(1)} s`);
  t.is(r.code, 0, `${r.stdout}\n${r.stderr}`);
  t.regex(r.stdout, /GCWAL_REPO=gs:\/\/gcwal-local\/demo-cluster/);
  t.regex(r.stdout, /no key file anywhere/);
  t.regex(r.stdout, /gcwal repo-create: gs:\/\/gcwal-local\/demo-cluster\/gcwal\.json now records this cluster's system identifier/);
  // gcloud is required here, as by the pipeline's own tests: a skipped pipeline is a failure.
  t.notRegex(r.stdout, /SKIPPED/);

  const validated = /^ {3}(\d+) WAL segments and (\d+) backup parts validated by the pipeline in \d+\.\d s$/m.exec(r.stdout);
  t.truthy(validated, 'the validated line');
  t.true(Number(validated?.[1]) >= 2, 'the segments before and of the backup');
  t.true(Number(validated?.[2]) >= 1, "the backup's parts");
  // The excerpt of gcwal status: the window from the backup, the backup valid, no alert yet.
  t.regex(r.stdout, /^ {7}restorable {3}from \d+\/[0-9A-F]+ at .* \(end of backup base_[0-9A-F]{24}\)$/m);
  t.regex(r.stdout, /^ {7}base_[0-9A-F]{24} .* valid$/m);
  t.regex(r.stdout, /^ {5}alerts {7}none open in the pipeline$/m);

  t.regex(r.stdout, /MATCH: the restore holds exactly the data committed before the target time/);
  t.notRegex(r.stdout, /MISMATCH/);

  const damaged = /^\d+\. Bit rot: flip 16 bytes of the archived ([0-9A-F]{24}) in the bucket/m.exec(r.stdout)?.[1];
  t.truthy(damaged, 'the damage step');
  t.regex(r.stdout, new RegExp(`^ {5}CRITICAL corrupt-object: wal segment ${damaged} .*failed validation`, 'm'));
  t.regex(r.stdout, /a Pub\/Sub subscriber on gcwal-alerts received, \d+\.\d s after the damage/);
  t.regex(
    r.stdout,
    new RegExp(
      `^ {3}pipeline: \\d+ WAL segments and \\d+ backup parts validated by the pipeline in \\d+\\.\\d s; the damaged ${damaged} alerted as CRITICAL in \\d+\\.\\d s$`,
      'm',
    ),
  );
});
