/** `npm run bench`: every benchmark, each table with its raw baseline measured in the same run. */
import { benchCross } from "./cross.js";
import { benchHosts } from "./hosts.js";
import { benchLocal } from "./local.js";

/** A run normally takes well under a minute: one that takes this long is stuck, and fails. */
const RUN_MS = 180_000;
// Exiting kills this process's threads; cluster workers exit when their channel closes, and
// the cross-host section kills its host processes on exit (see hosts.ts).
setTimeout(() => {
  console.error(`\nbench: no result after ${RUN_MS / 1000} s, giving up`);
  process.exit(1);
}, RUN_MS).unref();

console.log(`roar benchmarks — Node ${process.version}, ${process.platform}/${process.arch}`);
benchLocal();
await benchCross();
await benchHosts();
