-- Runs on the scripted model: its replies are in tests/replies.yaml.
local out = spell.run({ questions = { "When should I visit Lisbon?", "What should I pack?" } })
expect(#out.answers, 2)
assert(string.find(out.answers[1], "May", 1, true), out.answers[1])
assert(string.find(out.answers[2], "walking shoes", 1, true), out.answers[2])
expect(out.turns, 5) -- the system message, then two questions and two answers
