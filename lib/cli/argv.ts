/**
 * @module Pure argv parser: argv → Command. No I/O.
 */
import { SIGNAL_VERBS } from '../control/signals.js';

export type Command =
  | { kind: 'run'; config: string | null; daemon: boolean }
  | { kind: 'test'; config: string | null }
  /** `pidFile`: signal the pid in this file without reading the config (logrotate's reopen). */
  | { kind: 'signal'; verb: string; config: string | null; pidFile: string | null }
  | { kind: 'reload'; config: string | null }
  | { kind: 'upgrade'; config: string | null }
  | { kind: 'status'; config: string | null }
  | { kind: 'version' }
  | { kind: 'help' }
  | { kind: 'usage'; message: string };

export const USAGE = `usage: baton [-c FILE] [--daemon]        run the master (default config: conf/baton.yaml)
       baton -t [-c FILE]                  test the configuration
       baton -s reload|reopen|quit|stop|upgrade [-c FILE | --pid-file PATH]
                                           signal the running master (pid from the configured pid_file,
                                           or from PATH without reading the config)
       baton reload [-c FILE]              reload and report the outcome (needs the admin listener)
       baton upgrade [-c FILE]             USR2, wait for the new master, WINCH, QUIT; report each step
       baton status [-c FILE]              what /status says, for a person
       baton -v | -h
`;

export function parseArgv(argv: readonly string[]): Command {
  let config: string | null = null;
  let test = false;
  let daemon = false;
  let signal: string | null = null;
  let pidFile: string | null = null;
  let sub: 'reload' | 'upgrade' | 'status' | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '-c':
      case '--config':
        if (i + 1 >= argv.length) return { kind: 'usage', message: `${a} needs a file` };
        config = argv[++i];
        break;
      case '--pid-file':
        if (i + 1 >= argv.length) return { kind: 'usage', message: `${a} needs a path` };
        pidFile = argv[++i];
        break;
      case '-t':
      case '--test':
        test = true;
        break;
      case '-s':
      case '--signal': {
        if (i + 1 >= argv.length) return { kind: 'usage', message: `${a} needs one of: ${SIGNAL_VERBS.join(', ')}` };
        const verb = argv[++i];
        if (!SIGNAL_VERBS.includes(verb)) return { kind: 'usage', message: `unknown signal verb "${verb}": expected one of ${SIGNAL_VERBS.join(', ')}` };
        signal = verb;
        break;
      }
      case '--daemon':
      case '-d':
        daemon = true;
        break;
      case '-v':
      case '--version':
        return { kind: 'version' };
      case '-h':
      case '--help':
        return { kind: 'help' };
      case 'reload':
      case 'upgrade':
      case 'status':
        if (sub) return { kind: 'usage', message: `only one command at a time (got ${sub} and ${a})` };
        sub = a;
        break;
      default:
        return { kind: 'usage', message: `unknown argument "${a}"` };
    }
  }
  const modes = [test, signal !== null, sub !== null, daemon].filter(Boolean).length;
  if (modes > 1) return { kind: 'usage', message: 'choose one of -t, -s, --daemon, reload, upgrade, status' };
  if (pidFile !== null && signal === null) return { kind: 'usage', message: '--pid-file goes with -s (the other commands read the config)' };
  if (test) return { kind: 'test', config };
  if (signal) return { kind: 'signal', verb: signal, config, pidFile };
  if (sub) return { kind: sub, config };
  return { kind: 'run', config, daemon };
}
