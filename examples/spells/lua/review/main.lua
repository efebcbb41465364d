-- A code reviewer: reads a file from the workspace and returns structured findings.
local code = tools.call("read_file", { path = params.path })
local numbered, n = {}, 0
for line in (code .. "\n"):gmatch("(.-)\n") do
  n = n + 1
  numbered[#numbered + 1] = n .. ": " .. line
end
local review = llm.chat({
  { role = "system", content = "You review code. Report each real problem with its line number." },
  { role = "user", content = "Review " .. params.path .. ":\n" .. table.concat(numbered, "\n") },
}, {
  schema = {
    type = "object",
    properties = {
      issues = {
        type = "array",
        items = {
          type = "object",
          properties = { line = { type = "integer" }, problem = { type = "string" } },
          required = { "line", "problem" },
        },
      },
      verdict = { type = "string", enum = { "approve", "request_changes" } },
    },
    required = { "issues", "verdict" },
  },
})
log.info(params.path .. ": " .. #review.issues .. " issue(s), " .. review.verdict)
return review
