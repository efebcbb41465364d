-- Runs on the scripted model: its replies are in tests/replies.yaml.
local out = spell.run({ path = "tests/rhine.txt" })
assert(string.find(out.summary, "North Sea", 1, true), out.summary)
expect(out.verdict, "no errors")
local ok, err = pcall(spell.run, {})
assert(not ok and string.find(tostring(err), "give a path or a url", 1, true), tostring(err))
