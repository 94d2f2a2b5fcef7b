/**
 * @module Named exit codes, the only numbers the CLI exits with.
 */
export const EXIT = Object.freeze({
  /** Success. */
  OK: 0,
  /** The configuration is invalid (`-t`, start, `-s` without --pid-file, status). */
  CONFIG_INVALID: 1,
  /** The command line could not be understood. */
  USAGE: 2,
  /** No running master: the pid file is missing, unreadable, names no live process or a process that is not a baton master. */
  NOT_RUNNING: 3,
  /** The daemon could not start (a socket could not be bound, a worker could not start). */
  STARTUP_FAILED: 4,
  /**
   * A reload or upgrade was refused or failed, an invalid configuration included (`baton reload` and `baton upgrade`
   * report its errors and send nothing): what the operator asked did not happen, and the running daemon is unchanged.
   */
  OPERATION_FAILED: 5,
  /** `baton status`: a master runs but does not serve (/status answers 503: no ready worker), or its admin listener does not answer. */
  NOT_SERVING: 6,
});
