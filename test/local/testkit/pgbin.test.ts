import test from 'ava';
import path from 'node:path';
import { execOk } from '../../../local/testkit/exec.ts';
import { pgBinDirFor, SUPPORTED_PG_MAJORS } from '../../../local/testkit/pgbin.ts';
import { asPostgres } from '../../../local/testkit/users.ts';

for (const major of SUPPORTED_PG_MAJORS) {
  test(`PostgreSQL ${major}'s server programs run as the postgres user and say they are ${major}`, async (t) => {
    const dir = await pgBinDirFor(major);
    for (const program of ['initdb', 'pg_ctl', 'postgres']) {
      const [file, argv] = asPostgres(path.join(dir, program), ['--version']);
      const { stdout } = await execOk(file, argv);
      t.regex(stdout, new RegExp(`\\(PostgreSQL\\) ${major}\\.\\d+`), program);
    }
  });
}

test('asking twice for a version reuses the first copy of its build', async (t) => {
  t.is(await pgBinDirFor(18), await pgBinDirFor(18));
});
