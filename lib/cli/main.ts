/**
 * @module CLI entry for bin/baton: argv → command → exit code. With the master's runtime, the only place that
 * ends the process.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig, type LoadOptions } from '../config/load.js';
import { formatConfigError } from '../config/errors.js';
import { PACKAGE_ROOT, VERSION } from '../version.js';
import { parseArgv, USAGE, type Command } from './argv.js';
import { EXIT } from '../control/exit-codes.js';
import { reloadCommand, signalCommand, upgradeCommand } from './commands.js';
import { daemonCommand } from './daemon.js';
import { statusCommand } from './status.js';
import { traceStep } from '../util/startup-trace.js';

const out = (line: string) => process.stdout.write(line + '\n');
const err = (line: string) => process.stderr.write(line + '\n');

/** `-c` as given, else conf/baton.yaml from the working directory, else the one shipped with the package. */
function configPath(given: string | null): string {
  if (given) return path.resolve(given);
  const local = path.resolve('conf/baton.yaml');
  return fs.existsSync(local) ? local : path.join(PACKAGE_ROOT, 'conf/baton.yaml');
}

/** `-t` checks the config against this machine too (user, pid file and log paths), as nginx -t does; --daemon its logs. */
function loadOptions(cmd: Command): LoadOptions {
  if (cmd.kind === 'test') return { preflight: { machine: true, daemon: false } };
  if (cmd.kind === 'run' && cmd.daemon) return { preflight: { machine: false, daemon: true } };
  return {};
}

/**
 * Exit code for an invalid config. `baton reload`/`upgrade` exit 5 like any failed reload or upgrade (what was
 * asked did not happen; the daemon is unchanged), so a script or `systemctl reload` tests one code for "refused".
 */
function invalidConfig(cmd: Command, file: string): number {
  if (cmd.kind === 'test') err(`baton: configuration file ${file} test failed`);
  if (cmd.kind === 'reload' || cmd.kind === 'upgrade') {
    err(`baton: ${cmd.kind} failed: the configuration is invalid; nothing was sent to the running master, which is unchanged`);
    return EXIT.OPERATION_FAILED;
  }
  return EXIT.CONFIG_INVALID;
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
    case 'signal':
      // logrotate's reopen must not depend on the config on disk parsing: with --pid-file it is never read.
      if (cmd.pidFile !== null) return exit(signalCommand(path.resolve(cmd.pidFile), cmd.verb, err));
      break;
    default:
  }
  const file = configPath(cmd.config);
  const result = loadConfig(file, loadOptions(cmd));
  traceStep('config loaded');
  if (!result.ok) {
    const problems = result.errors.map(formatConfigError);
    problems.forEach(err);
    // A new master of an upgrade tells the old one, which logs it where the operator looks (not only this stderr).
    if (cmd.kind === 'run') await (await import('../master/upgrade.js')).reportStartupFailure(`invalid configuration:\n${problems.join('\n')}`);
    return exit(invalidConfig(cmd, file));
  }
  const config = result.config;
  switch (cmd.kind) {
    case 'test':
      out(`configuration ok: ${file}`);
      return exit(EXIT.OK);
    case 'signal':
      return exit(signalCommand(config.pidFile, cmd.verb, err));
    case 'reload':
      return exit(await reloadCommand(config, out, err));
    case 'upgrade':
      return exit(await upgradeCommand(config, out, err));
    case 'status':
      return exit(await statusCommand(config, out, err));
    case 'run': {
      if (cmd.daemon) return exit(await daemonCommand(config, argv, out, err));
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
