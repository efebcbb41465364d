// Runs on the scripted model: its replies are in tests/replies.yaml.
const review = await spell.run({ path: "tests/mean.py" });
expect(review.verdict, "request_changes");
expect(review.issues.length, 1);
expect(review.issues[0].line, 2);
let failed = "";
try { await spell.run({}); } catch (e) { failed = String(e); }
assert(failed.includes("path"), failed);
