/**
 * The environment terraform/ tells the database host to set
 * (outputs agent_env, agent_env_lines, and the variables inside
 * archive_command/restore_command) names only variables the agent reads.
 */
import test from 'ava';
import { CONFIG_TABLE } from '../../agent/config.ts';
import { loadAllModules, moduleAt, type Body } from './hcl.ts';

const root = moduleAt(await loadAllModules(), 'terraform');

test("the environment in the outputs uses only variables of the agent's configuration table", (t) => {
  const known = new Set(CONFIG_TABLE.map((row) => row.env));
  const env = root.locals.get('agent_env_all') as Body;
  t.true(Object.keys(env).length > 0);
  for (const name of Object.keys(env)) t.true(known.has(name), `agent_env sets ${name}, which agent/config.ts does not read`);
  for (const line of [root.locals.get('archive_command'), root.locals.get('restore_command')]) {
    for (const [, name] of String(line).matchAll(/([A-Z][A-Z0-9_]*)=/g)) t.true(known.has(name), `${String(line)} sets ${name}`);
  }
});
