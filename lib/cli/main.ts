/**
 * @module CLI entry for bin/baton: argv → command → exit code. With the master's runtime, the only place that
 * ends the process.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../config/load.js';
import { formatConfigError } from '../config/errors.js';
import type { Config } from '../config/types.js';
import { PACKAGE_ROOT, VERSION } from '../version.js';
import { parseArgv, USAGE } from './argv.js';
import { EXIT } from '../control/exit-codes.js';
import { daemonCommand, reloadCommand, signalCommand, statusCommand, upgradeCommand } from './commands.js';

const out = (line: string) => process.stdout.write(line + '\n');
const err = (line: string) => process.stderr.write(line + '\n');

/** `-c` as given, else conf/baton.yaml from the working directory, else the one shipped with the package. */
function configPath(given: string | null): string {
  if (given) return path.resolve(given);
  const local = path.resolve('conf/baton.yaml');
  return fs.existsSync(local) ? local : path.join(PACKAGE_ROOT, 'conf/baton.yaml');
}

function load(file: string, problems: string[] = []): Config | null {
  const result = loadConfig(file);
  if (result.ok) return result.config;
  for (const e of result.errors) problems.push(formatConfigError(e));
  problems.forEach(err);
  return null;
}

export async function main(argv: readonly string[]): Promise<void> {
  const cmd = parseArgv(argv);
  const exit = (code: number) => {
    process.exitCode = code;
  };
  switch (cmd.kind) {
    case 'usage':
      err(`baton: ${cmd.message}`);
      err(USAGE);
      return exit(EXIT.USAGE);
    case 'help':
      out(USAGE);
      return exit(EXIT.OK);
    case 'version':
      out(`baton ${VERSION}`);
      return exit(EXIT.OK);
    default:
  }
  const file = configPath(cmd.config);
  const problems: string[] = [];
  const config = load(file, problems);
  if (!config) {
    if (cmd.kind === 'test') err(`baton: configuration file ${file} test failed`);
    // A new master of an upgrade tells the old one, which logs it where the operator looks (not only this stderr).
    if (cmd.kind === 'run') await (await import('../master/upgrade.js')).reportStartupFailure(`invalid configuration:\n${problems.join('\n')}`);
    return exit(EXIT.CONFIG_INVALID);
  }
  switch (cmd.kind) {
    case 'test':
      out(`configuration ok: ${file}`);
      return exit(EXIT.OK);
    case 'signal':
      return exit(signalCommand(config, cmd.verb, err));
    case 'reload':
      return exit(await reloadCommand(config, out, err));
    case 'upgrade':
      return exit(await upgradeCommand(config, out, err));
    case 'status':
      return exit(await statusCommand(config, out, err));
    case 'run': {
      if (cmd.daemon) return exit(await daemonCommand(config, argv, err));
      const { runMaster, StartupError } = await import('../master/main.js');
      try {
        await runMaster(file, config);
      } catch (e) {
        if (!(e instanceof StartupError)) throw e;
        err(`baton: cannot start: ${e.message}`);
        return exit(EXIT.STARTUP_FAILED);
      }
      return;
    }
  }
}
