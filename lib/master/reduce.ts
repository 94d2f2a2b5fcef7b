/**
 * @module The master's decisions: a pure reducer from (state, event) to (state, effects). Signal handlers, child
 * exits, timers, the admin listener and the outcome of effects only produce events; runtime.ts performs what comes
 * out. One function per event, named for what it decides, so that every nginx edge case (double USR2, HUP after
 * WINCH, a new master dying, a "ready" arriving after the deadline...) is one unit test with no process involved.
 */
import type { MasterEvent, MasterState, Step } from './state.js';
import {
  onAdminFailed, onGenerationFailed, onGenerationGone, onGenerationReady, onPidFileFailed, onPidFileWritten, onQuitOrStop, onReopen,
  onStopDeadline, onWinch,
} from './reduce-lifecycle.js';
import { onConfigInvalid, onConfigLoaded, onReload } from './reduce-reload.js';
import {
  onAdminHandedOver, onNewMasterExited, onNewMasterFailed, onNewMasterReady, onNewMasterSpawnFailed, onNewMasterSpawned, onOldbinRenameFailed,
  onOldbinRenamed, onOldMasterGone, onUpgrade, onUpgradeDeadline,
} from './reduce-upgrade.js';

type Handler<K extends MasterEvent['type']> = (state: MasterState, event: Extract<MasterEvent, { type: K }>) => Step;

/** Every event and the one function that decides what it does. */
const ON: { readonly [K in MasterEvent['type']]: Handler<K> } = {
  reload: onReload,
  reopen: onReopen,
  upgrade: onUpgrade,
  winch: onWinch,
  quit: onQuitOrStop,
  stop: onQuitOrStop,
  stopDeadline: onStopDeadline,
  upgradeDeadline: onUpgradeDeadline,
  configLoaded: onConfigLoaded,
  configInvalid: onConfigInvalid,
  pidFileWritten: onPidFileWritten,
  pidFileFailed: onPidFileFailed,
  oldbinRenamed: onOldbinRenamed,
  oldbinRenameFailed: onOldbinRenameFailed,
  adminFailed: onAdminFailed,
  generationReady: onGenerationReady,
  generationFailed: onGenerationFailed,
  generationGone: onGenerationGone,
  newMasterSpawned: onNewMasterSpawned,
  newMasterSpawnFailed: onNewMasterSpawnFailed,
  newMasterFailed: onNewMasterFailed,
  newMasterReady: onNewMasterReady,
  newMasterExited: onNewMasterExited,
  adminHandedOver: onAdminHandedOver,
  oldMasterGone: onOldMasterGone,
};

export function reduce(state: MasterState, event: MasterEvent): Step {
  return (ON[event.type] as Handler<MasterEvent['type']>)(state, event);
}
