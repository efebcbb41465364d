-- Runs on the scripted model: its replies are in tests/replies.yaml.
local review = spell.run({ path = "tests/mean.py" })
expect(review.verdict, "request_changes")
expect(#review.issues, 1)
expect(review.issues[1].line, 2)
local ok, err = pcall(spell.run, {})
assert(not ok and string.find(tostring(err), "path", 1, true), tostring(err))
