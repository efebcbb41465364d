// Runs on the scripted model: its replies are in tests/replies.yaml.
const out = await spell.run({ path: "tests/sales.csv" });
expect(out.rows, 5);
expect(out.best_product.product, "coffee");
expect(out.by_region.length, 2);
expect(out.by_region[0].region, "north");
expect(out.by_region[0]["sum(amount)"], 350);
assert(out.report.includes("coffee"), out.report);
