/** Helpers shared by the unit specs. */
import { expect, jest } from "@jest/globals";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { RoarError, type RoarErrorCode } from "../lib/errors.js";

/** What `fn` threw, checked to be a RoarError with `code`. */
export function roarError(fn: () => unknown, code: RoarErrorCode): RoarError {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(RoarError);
  expect((thrown as RoarError).code).toBe(code);
  return thrown as RoarError;
}

const root = fileURLToPath(new URL("..", import.meta.url));

/** How a program run by {@link runProgram} ended. */
export interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `code` as an ES module in a fresh Node from the package root, where `import "roar"`
 * loads the built package (dist/) through the package's self-reference. Resolves when the
 * child exits by itself; a child still running after `limit` ms is killed and the test fails.
 */
export function runProgram(code: string, limit = 20_000): Promise<Outcome> {
  const env = { ...process.env };
  delete env["NODE_OPTIONS"];
  const child = spawn(process.execPath, ["--input-type=module", "-e", code], { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the program did not exit by itself within ${limit} ms; stdout: ${stdout}; stderr: ${stderr}`));
    }, limit);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (exitCode, signal) => {
      clearTimeout(timer);
      resolve({ code: exitCode, signal, stdout, stderr });
    });
  });
}

/**
 * Collects the messages of the warnings with `code` that this process emits from now on (under
 * jest, `process.on("warning")` hears nothing, so `process.emitWarning` is replaced); call the
 * returned array's `stop()` when done (tests add it to their cleanup).
 */
export function collectWarnings(code: string): string[] & { stop(): void } {
  const messages: string[] = [];
  const spy = jest.spyOn(process, "emitWarning").mockImplementation(((warning: string | Error, options?: { code?: string } | string) => {
    const warningCode = typeof options === "object" ? options.code : (warning as { code?: string }).code;
    if (warningCode === code) messages.push(String(warning instanceof Error ? warning.message : warning));
  }) as typeof process.emitWarning);
  return Object.assign(messages, { stop: () => spy.mockRestore() });
}
