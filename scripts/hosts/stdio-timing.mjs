// Spawn → initialize answered → tools/list answered, in ms, as the TypeScript SDK's
// stdio client sees it; the median of RUNS. Usage: node stdio-timing.mjs RUNS BIN
// (the environment of this process, which the caller sets, is the server's).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
const [runs, bin] = [Number(process.argv[2]), process.argv[3]];
const init = [];
const list = [];
for (let i = 0; i < runs; i++) {
  const transport = new StdioClientTransport({ command: bin, env: process.env, stderr: "ignore" });
  const client = new Client({ name: "check-hosts", version: "1" });
  const t0 = performance.now();
  await client.connect(transport); // spawn, initialize, notifications/initialized
  const t1 = performance.now();
  const tools = await client.listTools();
  const t2 = performance.now();
  if (tools.tools.length === 0) throw new Error("no tools");
  init.push(t1 - t0);
  list.push(t2 - t0);
  await client.close();
}
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)].toFixed(1);
console.log(`  TS SDK 1.32 (stdio), median of ${runs}: spawn→initialize answered ${median(init)} ms, spawn→tools/list answered ${median(list)} ms`);
