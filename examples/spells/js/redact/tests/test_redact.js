// Runs on the scripted model: its replies are in tests/replies.yaml.
const out = await spell.run({ path: "tests/notes.txt" });
expect(out.redacted, 2);
assert(out.answer.includes("redacted"), out.answer);
