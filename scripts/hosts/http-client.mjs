// What the TypeScript SDK's StreamableHTTPClientTransport reports when it connects to
// quilt-mcp over HTTP with no token, a token signed with another key, an expired token
// and a valid one; with the valid one, a tool call (answered by the server's direct
// path; the SDK checks its structuredContent against the tool's output schema) and a
// refused one. Usage: node http-client.mjs URL GOOD BAD EXPIRED
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
    if (token === good) {
      const status = await client.callTool({ name: "auth_status", arguments: {} });
      console.log(`    auth_status: isError ${status.isError}, authenticated ${status.structuredContent?.authenticated}, level ${status.structuredContent?.level}`);
      try {
        await client.callTool({ name: "bucket_objects_list", arguments: { bucket: "not-in-the-token" } });
        console.log("    bucket_objects_list outside the token: answered (unexpected)");
      } catch (e) {
        console.log(`    bucket_objects_list outside the token: ${e.constructor.name}: ${e.message}`);
      }
    }
    await client.close();
  } catch (e) {
    console.log(`  ${label}: ${e.constructor.name}: ${e.message}`);
    await transport.close().catch(() => {});
  }
}
