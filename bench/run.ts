/** `npm run bench`: every benchmark, each table with its raw baseline measured in the same run. */
import { benchCross } from "./cross.js";
import { benchHosts } from "./hosts.js";
import { benchLocal } from "./local.js";

console.log(`roar benchmarks — Node ${process.version}, ${process.platform}/${process.arch}`);
benchLocal();
await benchCross();
await benchHosts();
