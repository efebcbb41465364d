// Runs on the scripted model: its replies are in tests/replies.yaml.
const out = await spell.run({ path: "tests/rhine.txt" });
assert(out.summary.includes("North Sea"), out.summary);
expect(out.verdict, "no errors");
let failed = "";
try { await spell.run({}); } catch (e) { failed = String(e); }
assert(failed.includes("give a path or a url"), failed);
