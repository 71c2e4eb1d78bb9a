// runnerctl's container hook entry point. GitHub's runner runs this file (named by
// ACTIONS_RUNNER_CONTAINER_HOOKS) with its own Node.js for every container operation of a job;
// it hands its standard input to `runnerctl container-hook`, whose output and exit status are
// the step's. RUNNERCTL_BIN names another runnerctl binary.
'use strict';
const { spawnSync } = require('child_process');
const bin = process.env.RUNNERCTL_BIN || '/usr/local/bin/runnerctl';
const r = spawnSync(bin, ['container-hook'], { stdio: 'inherit' });
if (r.error) {
  console.error(`runnerctl container hook: cannot run ${bin}: ${r.error.message}`);
  process.exit(1);
}
process.exit(r.status === null ? 1 : r.status);
