// Prints four lines for scripts/check-hosts: an HS256 token valid for an hour, one
// signed with another secret, one expired an hour ago (all for the audience
// quilt-mcp-server), and nothing else. Usage: node tokens.mjs SECRET
import crypto from "node:crypto";
const secret = process.argv[2];
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
const jwt = (claims, key) => {
  const m = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${m}.${crypto.createHmac("sha256", key).update(m).digest("base64url")}`;
};
const now = Math.floor(Date.now() / 1000);
const claims = {
  sub: "check-hosts", aud: "quilt-mcp-server", iat: now - 7200, exp: now + 3600,
  level: "read", buckets: ["example"], permissions: ["s3:ListBucket"],
};
console.log(jwt(claims, secret));
console.log(jwt(claims, `not-${secret}`));
console.log(jwt({ ...claims, exp: now - 3600 }, secret));
