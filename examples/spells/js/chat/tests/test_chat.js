// Runs on the scripted model: its replies are in tests/replies.yaml.
const out = await spell.run({ questions: ["When should I visit Lisbon?", "What should I pack?"] });
expect(out.answers.length, 2);
assert(out.answers[0].includes("May"), out.answers[0]);
assert(out.answers[1].includes("walking shoes"), out.answers[1]);
expect(out.turns, 5); // the system message, then two questions and two answers
