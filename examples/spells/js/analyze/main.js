// A parallel data analysis: three questions over one CSV file at once, then one written summary.
const query = (args) => () => tools.call("csv_query", { ...args, path: params.path });
const [byRegion, byProduct, count] = await parallel(
  query({ group_by: ["region"], aggregates: ["sum(amount)"], order_by: "region" }),
  query({ group_by: ["product"], aggregates: ["sum(amount)"], order_by: "sum(amount)", descending: true, limit: 1 }),
  query({ aggregates: ["count(*)"] }),
);
const figures = {
  by_region: byRegion.rows, best_product: byProduct.rows[0], rows: count.rows[0]["count(*)"],
};
figures.report = await llm.chat("Write one paragraph on these sales figures: " + JSON.stringify(figures));
return figures;
