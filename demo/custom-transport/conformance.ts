/**
 * Runs roar's transport conformance suite (`roar/testing`) against TcpTransport, without a test
 * framework: each check is an async function that throws when the transport fails it.
 *
 *   npm run build && node build/demo/custom-transport/conformance.js
 *
 * Prints ✓ or ✗ per check; the exit code is 1 if any failed.
 */
import { transportConformance } from "roar/testing";
import { TcpTransport } from "./tcp-transport.js";

const checks = transportConformance(({ listen, peers }) => {
  const transport = new TcpTransport({ listen: listen ? { port: 0 } : undefined, peers });
  return { transport, address: () => transport.url ?? "" };
});

let failed = 0;
for (const check of checks) {
  const start = performance.now();
  try {
    await check.run();
    console.log(`✓ ${check.name} (${Math.round(performance.now() - start)} ms)`);
  } catch (error) {
    failed++;
    console.log(`✗ ${check.name}\n    ${String(error instanceof Error ? error.message : error).replaceAll("\n", "\n    ")}`);
  }
}
console.log(`${checks.length - failed} of ${checks.length} checks passed`);
process.exitCode = failed === 0 ? 0 : 1;
