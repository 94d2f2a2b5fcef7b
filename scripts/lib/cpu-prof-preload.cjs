// Preloaded (NODE_OPTIONS=--require) by scripts/cpu-profile into baton's processes: Node refuses --cpu-prof in
// NODE_OPTIONS and the master spawns workers with its own argv, so each process profiles itself through the
// in-process inspector and writes BATON_CPU_PROF_DIR/<pid>.cpuprofile when it exits.
'use strict';
const dir = process.env.BATON_CPU_PROF_DIR;
if (dir) {
  const inspector = require('node:inspector');
  const fs = require('node:fs');
  const session = new inspector.Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: Number(process.env.BATON_CPU_PROF_INTERVAL || 200) });
  session.post('Profiler.start');
  process.on('exit', () => {
    // The in-process session answers synchronously: the profile is on disk before the process ends.
    session.post('Profiler.stop', (err, res) => {
      if (!err) fs.writeFileSync(`${dir}/${process.pid}.cpuprofile`, JSON.stringify(res.profile));
    });
  });
}
