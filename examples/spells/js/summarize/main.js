// Research and summarize: read a document, summarize it, and have a checker agent review it.
let source;
if (params.url) {
  source = (await tools.call("http_fetch", { url: params.url })).text;
} else if (params.path) {
  source = await tools.call("read_file", { path: params.path });
} else {
  throw new Error("give a path or a url");
}
const draft = await llm.chat([
  { role: "system", content: "You summarize documents in at most three sentences." },
  { role: "user", content: "Summarize:\n" + source },
]);
const checker = agent.new({
  name: "checker",
  instructions: "Compare the summary with the source; list its factual errors, or answer 'no errors'.",
});
const verdict = await checker.run("Source:\n" + source + "\n\nSummary:\n" + draft);
await log.info(`checked a summary of ${source.length} characters`);
return { summary: draft, verdict };
