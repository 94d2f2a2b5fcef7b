/**
 * @module An error as one short log field: its code (EBADF, ERR_IPC_CHANNEL_CLOSED, ENOENT...), else its message.
 * For log text; metric labels use worker/errors.ts `errorCode`, whose fallbacks keep the label set small.
 */
export function codeOrMessage(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}
