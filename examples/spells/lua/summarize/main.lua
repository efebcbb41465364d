-- Research and summarize: read a document, summarize it, and have a checker agent review it.
local source
if params.url ~= "" then
  source = tools.call("http_fetch", { url = params.url }).text
elseif params.path ~= "" then
  source = tools.call("read_file", { path = params.path })
else
  error("give a path or a url")
end
local draft = llm.chat({
  { role = "system", content = "You summarize documents in at most three sentences." },
  { role = "user", content = "Summarize:\n" .. source },
})
local checker = agent.new({
  name = "checker",
  instructions = "Compare the summary with the source; list its factual errors, or answer 'no errors'.",
})
local verdict = checker:run("Source:\n" .. source .. "\n\nSummary:\n" .. draft)
log.info("checked a summary of " .. #source .. " characters")
return { summary = draft, verdict = verdict }
