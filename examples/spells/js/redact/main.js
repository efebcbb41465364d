// A hook that redacts e-mail addresses from every tool result before the model reads it.
const EMAIL = /[\w.+-]+@[\w.-]+\.[A-Za-z]+/g;
let redacted = 0;
hooks.on("after_tool", (ctx) => {
  const value = ctx.result.value;
  if (typeof value === "string") {
    const text = value.replace(EMAIL, () => { redacted += 1; return "[email]"; });
    return { result: { value: text } }; // the fields to replace; the rest stays
  }
});
const reader = agent.new({
  name: "reader",
  instructions: "Read the file you are given and say who is mentioned in it.",
  tools: ["read_file"],
});
const answer = await reader.run("Read " + params.path);
return { answer, redacted };
