/**
 * The committed reference (docs/commands.md, docs/configuration.md) against
 * what scripts/gen-reference.ts makes of the code now: a command, setting or
 * exit code changed without `npm run docs` fails here.
 */

import { readFile } from 'node:fs/promises';
import test from 'ava';
import { COMMANDS } from '../../agent/commands/index.ts';
import { CONFIG_TABLE } from '../../agent/config.ts';
import { EXIT_CODES } from '../../agent/help.ts';
import { ExitCode } from '../../core/errors.ts';
import { renderReadme, renderReference } from '../../scripts/gen-reference.ts';

const root = new URL('../../', import.meta.url);

test("the committed docs/commands.md, docs/configuration.md and the README's exit codes are what npm run docs generates from the code", async (t) => {
  const generated = await renderReference();
  t.deepEqual(Object.keys(generated).sort(), ['README.md', 'docs/commands.md', 'docs/configuration.md']);
  for (const [file, text] of Object.entries(generated)) {
    t.is(await readFile(new URL(file, root), 'utf8'), text, `${file} is stale: run npm run docs`);
  }
});

test('every exit code gcwal can return has a row in the reference and in the README, 126 and 130 included', async (t) => {
  const generated = await renderReference();
  const commands = generated['docs/commands.md'];
  const readme = generated['README.md'];
  t.deepEqual(
    EXIT_CODES.map(([exit]) => exit).sort((a, b) => a - b),
    Object.values(ExitCode).sort((a, b) => a - b),
  );
  for (const table of [commands.slice(commands.indexOf('\n## Exit codes\n')), readme.slice(readme.indexOf('\n## Exit codes\n'))]) {
    for (const exit of Object.values(ExitCode)) t.regex(table, new RegExp(`\\n\\| ${exit} \\| `), `exit ${exit}`);
  }
});

test('a README without the exit-code markers is refused rather than left without its table', (t) => {
  t.throws(() => renderReadme('# gcwal\n'), { message: /lacks the markers/ });
});

test('the reference says how many segments wal-push archives ahead as the code does', async (t) => {
  const { AHEAD_LIMIT } = await import('../../agent/wal/ahead.ts');
  const commands = (await renderReference())['docs/commands.md'];
  t.regex(commands, new RegExp(`up to ${AHEAD_LIMIT} of them`));
  t.notRegex(commands, /up to 4 of/);
});

test('the command list --help prints from the index gives each command the summary of its own file', async (t) => {
  for (const [name, entry] of Object.entries(COMMANDS)) {
    const command = await entry.load();
    t.is(command.name, name);
    t.is(entry.summary, command.summary, name);
  }
});

test('the configuration reference has a row for every setting and offers no flag for a variable that has none', async (t) => {
  const config = (await renderReference())['docs/configuration.md'];
  for (const row of CONFIG_TABLE) {
    t.regex(config, new RegExp(`\\n\\| \`${row.env}\` \\| `), row.env);
    t.is(config.includes(`\`--${row.flag}\``), !row.envOnly, `--${row.flag}`);
  }
});
