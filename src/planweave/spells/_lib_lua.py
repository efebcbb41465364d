"""Library code of Lua spells, run in the script's environment before the script: agents and
conversations as objects with methods, over the host calls ``agent.run``, ``agent.lookup`` and
``llm.chat``."""

from __future__ import annotations

__all__ = ["LUA_LIB"]

LUA_LIB = r"""
-- A host call made for the script: its error is reported at the script's line.
local function relay(fn, ...)
  local results = table.pack(pcall(fn, ...))
  if not results[1] then
    local message = results[2]
    if type(message) == "string" then
      message = (message:gsub("^planweave%-lib%.lua:%d+: ", ""))
    end
    error(message, 3)
  end
  return table.unpack(results, 2, results.n)
end

if agent and agent.run then
  local run_op, lookup_op = agent.run, agent.lookup
  local as_tools = {}
  local Agent = {}
  Agent.__index = Agent

  local function resolved(spec, depth)
    if spec.ref or depth > 8 then return spec end
    local out = {}
    for k, v in pairs(spec) do out[k] = v end
    if type(spec.tools) == "table" then
      local tools = {}
      for i, name in ipairs(spec.tools) do
        local sub = as_tools[name]
        if sub then tools[i] = { agent = resolved(sub, depth + 1) } else tools[i] = name end
      end
      out.tools = tools
    end
    return out
  end

  function Agent:run(input)
    return relay(run_op, resolved(self.spec, 0), input)
  end

  function Agent:as_tool()
    as_tools[self.name] = self.spec
    return self.name
  end

  agent.new = function(spec)
    if type(spec) ~= "table" or type(spec.name) ~= "string" then
      error("agent.new needs a table with a name", 2)
    end
    return setmetatable({ name = spec.name, spec = spec }, Agent)
  end

  agent.get = function(name)
    relay(lookup_op, name)
    return setmetatable({ name = name, spec = { ref = name } }, Agent)
  end
end

if llm and llm.chat then
  local chat = llm.chat
  local Conversation = {}
  Conversation.__index = Conversation

  function Conversation:say(text)
    local messages = self.messages
    messages[#messages + 1] = { role = "user", content = text }
    local reply = relay(chat, messages, self.opts)
    messages[#messages + 1] = { role = "assistant", content = reply }
    return reply
  end

  function Conversation:history()
    local out = {}
    for i, m in ipairs(self.messages) do out[i] = { role = m.role, content = m.content } end
    return out
  end

  llm.conversation = function(opts)
    opts = opts or {}
    local rest, messages = {}, {}
    for k, v in pairs(opts) do
      if k ~= "system" then rest[k] = v end
    end
    if opts.system then messages[1] = { role = "system", content = opts.system } end
    return setmetatable({ messages = messages, opts = rest }, Conversation)
  end
end
"""
