"""The Lua side of a spell's workflows: ``workflow.sequential``, ``workflow.parallel``,
``workflow.conditional`` and ``workflow.loop``, as library code loaded into every Lua spell.

A step is a function of the spell (``function(input) return output end``) or an agent object
(any table with a ``run`` field, called as ``step:run(input)``).
"""

from __future__ import annotations

FLOW_LUA = r"""
local function run_step(step, input, where)
  if type(step) == "function" then
    return step(input)
  end
  if type(step) == "table" and step.run ~= nil then
    return step:run(input)
  end
  error(where .. ": a step is a function or an agent (a table with run), not a " .. type(step), 3)
end

local function steps_of(steps, where)
  if type(steps) ~= "table" then
    error(where .. ": the steps are a list of functions or agents", 3)
  end
  return steps
end

workflow = {}

-- Runs the steps one after the other, each on the output of the one before.
function workflow.sequential(steps, input)
  local value = input
  for i, step in ipairs(steps_of(steps, "workflow.sequential")) do
    value = run_step(step, value, "workflow.sequential step " .. i)
  end
  return value
end

-- Runs every step on the same input at once; their outputs, in order.
function workflow.parallel(steps, input)
  local fns = {}
  for i, step in ipairs(steps_of(steps, "workflow.parallel")) do
    fns[i] = function() return run_step(step, input, "workflow.parallel step " .. i) end
  end
  return { parallel(table.unpack(fns)) }
end

-- Runs then_step when pred(input) is true, else else_step (the input itself when absent).
function workflow.conditional(pred, then_step, else_step, input)
  local yes
  if type(pred) == "function" then
    yes = pred(input)
  else
    yes = pred
  end
  if yes then
    return run_step(then_step, input, "workflow.conditional then")
  end
  if else_step == nil then
    return input
  end
  return run_step(else_step, input, "workflow.conditional else")
end

-- Runs the step again on its own output until opts.until(output) is true or opts.max runs.
function workflow.loop(step, opts, input)
  opts = opts or {}
  local max = opts.max or 10
  local value = input
  for i = 1, max do
    value = run_step(step, value, "workflow.loop iteration " .. i)
    if opts["until"] ~= nil and opts["until"](value, i) then
      break
    end
  end
  return value
end
"""
