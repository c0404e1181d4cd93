// What the TypeScript SDK's StreamableHTTPClientTransport reports when it connects to
// quilt-mcp over HTTP with no token, a token signed with another key, an expired token
// and a valid one. Usage: node http-client.mjs URL GOOD BAD EXPIRED
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
const [url, good, bad, expired] = process.argv.slice(2);
const cases = [
  ["no token", null],
  ["bad token", bad],
  ["expired token", expired],
  ["valid token", good],
];
for (const [label, token] of cases) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  const client = new Client({ name: "check-hosts", version: "1" });
  try {
    await client.connect(transport);
    const tools = await client.listTools();
    console.log(`  ${label}: connected, ${tools.tools.length} tools`);
    await client.close();
  } catch (e) {
    console.log(`  ${label}: ${e.constructor.name}: ${e.message}`);
    await transport.close().catch(() => {});
  }
}
