/**
 * @module Named exit codes, the only numbers the CLI exits with.
 */
export const EXIT = Object.freeze({
  /** Success. */
  OK: 0,
  /** The configuration is invalid (`-t`, start). */
  CONFIG_INVALID: 1,
  /** The command line could not be understood. */
  USAGE: 2,
  /** No running master: the pid file is missing, unreadable, or names no live process. */
  NOT_RUNNING: 3,
  /** The daemon could not start (a socket could not be bound, a worker could not start). */
  STARTUP_FAILED: 4,
  /** A reload or upgrade was refused or failed; the running daemon is unchanged. */
  OPERATION_FAILED: 5,
});
