// A code reviewer: reads a file from the workspace and returns structured findings.
const code = await tools.call("read_file", { path: params.path });
const numbered = code.split("\n").map((line, i) => `${i + 1}: ${line}`).join("\n");
const review = await llm.chat(
  [
    { role: "system", content: "You review code. Report each real problem with its line number." },
    { role: "user", content: `Review ${params.path}:\n${numbered}` },
  ],
  {
    schema: {
      type: "object",
      properties: {
        issues: {
          type: "array",
          items: {
            type: "object",
            properties: { line: { type: "integer" }, problem: { type: "string" } },
            required: ["line", "problem"],
          },
        },
        verdict: { type: "string", enum: ["approve", "request_changes"] },
      },
      required: ["issues", "verdict"],
    },
  },
);
await log.info(`${params.path}: ${review.issues.length} issue(s), ${review.verdict}`);
return review;
