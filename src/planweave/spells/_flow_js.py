"""The JavaScript side of a spell's workflows and concurrency: ``parallel(...fns)`` and
``workflow.sequential``, ``workflow.parallel``, ``workflow.conditional``, ``workflow.loop``,
as library code loaded into every JavaScript spell.

A step is an async (or plain) function of the spell, ``async (input) => output``, or an agent
object (any object with a ``run`` method, called as ``await step.run(input)``).
"""

from __future__ import annotations

FLOW_JS = r"""
(function () {
  const runStep = async function (step, input, where) {
    if (typeof step === "function") return await step(input);
    if (step && typeof step.run === "function") return await step.run(input);
    throw new TypeError(where + ": a step is a function or an agent (an object with run)");
  };
  const stepsOf = function (steps, where) {
    if (!Array.isArray(steps)) throw new TypeError(where + ": the steps are a list of functions or agents");
    return steps;
  };
  globalThis.parallel = function (...fns) {
    fns.forEach((fn, i) => {
      if (typeof fn !== "function") throw new TypeError("parallel: argument " + (i + 1) + " is not a function");
    });
    return Promise.all(fns.map(fn => Promise.resolve().then(() => fn())));
  };
  globalThis.workflow = {
    sequential: async function (steps, input) {
      let value = input;
      const list = stepsOf(steps, "workflow.sequential");
      for (let i = 0; i < list.length; i++) value = await runStep(list[i], value, "workflow.sequential step " + (i + 1));
      return value;
    },
    parallel: function (steps, input) {
      return Promise.all(stepsOf(steps, "workflow.parallel").map(
        (step, i) => runStep(step, input, "workflow.parallel step " + (i + 1))));
    },
    conditional: async function (pred, thenStep, elseStep, input) {
      const yes = typeof pred === "function" ? await pred(input) : pred;
      if (yes) return await runStep(thenStep, input, "workflow.conditional then");
      if (elseStep === undefined || elseStep === null) return input;
      return await runStep(elseStep, input, "workflow.conditional else");
    },
    loop: async function (step, opts, input) {
      opts = opts || {};
      const max = opts.max === undefined ? 10 : opts.max;
      let value = input;
      for (let i = 1; i <= max; i++) {
        value = await runStep(step, value, "workflow.loop iteration " + i);
        if (opts.until && await opts.until(value, i)) break;
      }
      return value;
    },
  };
})();
//# sourceURL=workflow.js
"""
