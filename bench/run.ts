/**
 * `npm run bench`: every benchmark, each table with its raw baseline measured in the same run.
 * `node --expose-gc build/bench/run.js brokers hosts` runs only the sections named
 * (local, cross, hosts, brokers).
 */
import { benchBrokers } from "./brokers.js";
import { benchCross } from "./cross.js";
import { benchHosts } from "./hosts.js";
import { benchLocal } from "./local.js";

/** A run normally takes about three minutes on a busy 2-core machine: one that takes this long is stuck, and fails. */
const RUN_MS = 420_000;
// Exiting kills this process's threads; cluster workers exit when their channel closes, and
// the cross-host sections kill their host processes and broker servers on exit (see hosts.ts,
// servers.ts).
setTimeout(() => {
  console.error(`\nbench: no result after ${RUN_MS / 1000} s, giving up`);
  process.exit(1);
}, RUN_MS).unref();

const sections = process.argv.slice(2);
const runs = (name: string): boolean => sections.length === 0 || sections.includes(name);

console.log(`roar benchmarks — Node ${process.version}, ${process.platform}/${process.arch}`);
if (runs("local")) benchLocal();
if (runs("cross")) await benchCross();
if (runs("hosts")) await benchHosts();
if (runs("brokers")) await benchBrokers();
