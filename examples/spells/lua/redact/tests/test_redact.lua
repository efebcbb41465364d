-- Runs on the scripted model: its replies are in tests/replies.yaml.
local out = spell.run({ path = "tests/notes.txt" })
expect(out.redacted, 2)
assert(string.find(out.answer, "redacted", 1, true), out.answer)
