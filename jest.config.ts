import type { Config } from "jest";

// Specs run under ts-jest as ESM. Code that runs in other threads or processes (fixtures,
// demos) is compiled by `npm run build` first and loaded from build/ and dist/, because Node
// does not pass ts-jest's transform to workers it starts.
const config: Config = {
  testEnvironment: "node",
  extensionsToTreatAsEsm: [".ts"],
  roots: ["<rootDir>/spec"],
  testMatch: ["**/*.spec.ts"],
  moduleNameMapper: { "^(\\.{1,2}/.*)\\.js$": "$1" },
  transform: {
    "^.+\\.ts$": ["ts-jest", { useESM: true, tsconfig: "tsconfig.json" }],
  },
  testTimeout: 60_000,
};

export default config;
