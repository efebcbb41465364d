-- A parallel data analysis: three questions over one CSV file at once, then one written summary.
local function query(args)
  args.path = params.path
  return function() return tools.call("csv_query", args) end
end
local by_region, by_product, count = parallel(
  query({ group_by = { "region" }, aggregates = { "sum(amount)" }, order_by = "region" }),
  query({ group_by = { "product" }, aggregates = { "sum(amount)" }, order_by = "sum(amount)", descending = true, limit = 1 }),
  query({ aggregates = { "count(*)" } })
)
local figures = {
  by_region = by_region.rows, best_product = by_product.rows[1], rows = count.rows[1]["count(*)"],
}
figures.report = llm.chat("Write one paragraph on these sales figures: " .. json.encode(figures))
return figures
