-- Runs on the scripted model: its replies are in tests/replies.yaml.
local out = spell.run({ path = "tests/sales.csv" })
expect(out.rows, 5)
expect(out.best_product.product, "coffee")
expect(#out.by_region, 2)
expect(out.by_region[1].region, "north")
expect(out.by_region[1]["sum(amount)"], 350)
assert(string.find(out.report, "coffee", 1, true), out.report)
