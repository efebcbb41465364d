"""The trusted Lua code that builds a spell's sandbox: run once per runtime, before the spell.

It keeps the runtime's real libraries to itself and hands the spell a fresh environment of safe
copies: no ``io``, ``os``, ``debug``, ``package``, ``require``, ``load``, ``dofile``,
``collectgarbage`` or ``python``; ``string`` without ``dump`` and with its pattern functions
refusing matches too costly to finish (a pattern match cannot be interrupted); ``pcall`` and
``xpcall`` that cannot swallow the limits' errors; ``coroutine`` whose coroutines are metered
like the spell and pass the spell's host calls up to the host.

Host calls leave the script as a yielded request (``{op=..., args=...}``): the Python side
awaits the call on the event loop and resumes the script with ``ok, value``.
"""

from __future__ import annotations

PRELUDE = r"""
local real = {
  ipairs = ipairs,
  yield = coroutine.yield, resume = coroutine.resume, create = coroutine.create,
  status = coroutine.status, running = coroutine.running, isyieldable = coroutine.isyieldable,
  close = coroutine.close, sethook = debug.sethook, pcall = pcall, xpcall = xpcall,
  error = error, load = load, setmetatable = setmetatable, getmetatable = getmetatable,
  pack = table.pack, unpack = table.unpack, type = type, select = select,
}
local REQUEST = {}         -- the metatable that marks a host request
local LIMIT = {}           -- the error value of an exceeded limit (one value, never a string)
local MEMORY = "not enough memory"
local stopped = nil        -- why the spell was stopped: "instructions", "wall_time", ...
local HOOK_EVERY = 10000   -- instructions between two checks

local budget, check_host, main, spell_env
local used = 0

local function hook()
  used = used + HOOK_EVERY
  if used > budget then
    stopped = "instructions"
    real.error(LIMIT, 0)
  end
  local why = check_host()
  if why then
    stopped = why
    real.error(LIMIT, 0)
  end
end

local function metered(fn)
  local co = real.create(fn)
  real.sethook(co, hook, "", HOOK_EVERY)
  return co
end

local function is_request(value)
  return real.type(value) == "table" and real.getmetatable(value) == REQUEST
end

local function host(op, ...)
  local answer = real.pack(real.yield(real.setmetatable({op = op, args = real.pack(...)}, REQUEST)))
  if answer[1] then
    return real.unpack(answer, 2, answer.n)
  end
  real.error(answer[2], 2)
end

-- A limit or an out-of-memory error goes through every pcall to the top.
local function rethrow(results)
  if not results[1] then
    local err = results[2]
    if err == LIMIT or stopped ~= nil or err == MEMORY then
      real.error(err, 0)
    end
  end
  return real.unpack(results, 1, results.n)
end

local function safe_pcall(fn, ...)
  return rethrow(real.pack(real.pcall(fn, ...)))
end

local function safe_xpcall(fn, handler, ...)
  local function guarded(err)
    if err == LIMIT or stopped ~= nil or err == MEMORY then
      return err
    end
    return handler(err)
  end
  return rethrow(real.pack(real.xpcall(fn, guarded, ...)))
end

-- A coroutine of the spell: metered, and its host requests go up to the host.
local function safe_resume(co, ...)
  local results = real.pack(real.resume(co, ...))
  while results[1] and is_request(results[2]) and real.status(co) == "suspended" do
    local answer = real.pack(real.yield(results[2]))
    results = real.pack(real.resume(co, real.unpack(answer, 1, answer.n)))
  end
  return rethrow(results)
end

local safe_coroutine = {
  create = metered,
  resume = safe_resume,
  status = real.status,
  running = real.running,
  isyieldable = real.isyieldable,
  close = real.close,
  yield = real.yield,
  wrap = function(fn)
    local co = metered(fn)
    return function(...)
      local results = real.pack(safe_resume(co, ...))
      if not results[1] then
        real.error(results[2], 2)
      end
      return real.unpack(results, 2, results.n)
    end
  end,
}

-- Patterns: a match cannot be interrupted, so refuse one whose worst case is too costly.
local MAX_SUBJECT = 1000000
local MAX_STEPS = 5e7
local function check_pattern(subject, pattern, plain)
  subject = tostring(subject)
  if #subject > MAX_SUBJECT then
    real.error("string too long for a pattern match (" .. #subject .. " bytes; at most "
      .. MAX_SUBJECT .. ")", 3)
  end
  if plain then return end
  pattern = tostring(pattern)
  local repeats = 0
  local i = 1
  while i <= #pattern do
    local c = pattern:sub(i, i)
    if c == "%" then
      i = i + 1
    elseif c == "*" or c == "+" or c == "-" or c == "?" then
      repeats = repeats + 1
    end
    i = i + 1
  end
  if repeats > 0 and (#subject + 1) ^ repeats > MAX_STEPS then
    real.error("pattern too costly for a string of " .. #subject .. " bytes (" .. repeats
      .. " repetitions); match a shorter string or use string.find with plain = true", 3)
  end
end

local string_lib = {}
for name, fn in pairs(string) do
  if name ~= "dump" then string_lib[name] = fn end
end
string_lib.find = function(s, p, init, plain)
  check_pattern(s, p, plain)
  return string.find(s, p, init, plain)
end
string_lib.match = function(s, p, init)
  check_pattern(s, p, false)
  return string.match(s, p, init)
end
string_lib.gmatch = function(s, p, init)
  check_pattern(s, p, false)
  return string.gmatch(s, p, init)
end
string_lib.gsub = function(s, p, repl, n)
  check_pattern(s, p, false)
  return string.gsub(s, p, repl, n)
end
-- ("x"):find(...) goes through the safe table too, and the string metatable is out of reach.
local string_meta = real.getmetatable("")
string_meta.__index = string_lib
string_meta.__metatable = false

local function copy(lib)
  local out = {}
  for name, fn in pairs(lib) do out[name] = fn end
  return out
end

local math_lib = copy(math)

-- A finalizer would run when the runtime is freed, in the host and outside the budget, so a
-- metatable with __gc is refused (without the field at this point, an object is never
-- finalized, whatever is added to its metatable later).
local function safe_setmetatable(t, mt)
  if real.type(t) ~= "table" then
    error("bad argument #1 to 'setmetatable' (table expected, got " .. real.type(t) .. ")", 2)
  end
  if real.type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("__gc metamethods are not available in a spell", 2)
  end
  return setmetatable(t, mt)
end

-- Builds a spell's environment and loads its source as text (never bytecode).
function __sandbox(source, chunk, globals, limit, checker, seed, library)
  budget = limit
  check_host = checker
  math.randomseed(seed)
  local env = {
    assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
    pcall = safe_pcall, xpcall = safe_xpcall, rawequal = rawequal, rawget = rawget,
    rawlen = rawlen, rawset = rawset, select = select, setmetatable = safe_setmetatable,
    getmetatable = getmetatable, tonumber = tonumber, tostring = tostring, type = type,
    _VERSION = _VERSION,
    string = string_lib, table = copy(table), math = math_lib, utf8 = copy(utf8),
    coroutine = safe_coroutine,
  }
  for name, value in pairs(globals) do env[name] = value end
  env._G = env
  spell_env = env
  local fn, err = real.load(source, "=" .. chunk, "t", env)
  if not fn then return "error", err end
  if library then
    local lib, lib_err = real.load(library, "=planweave-lib.lua", "t", env)
    if not lib then return "error", lib_err end
    local spell = fn
    fn = function(...)
      lib()
      return spell(...)
    end
  end
  main = metered(fn)
  return "ok", ""
end

-- Makes a host function: a call yields a request to the host.
function __host_function(op)
  return function(...) return host(op, ...) end
end

-- Runs the given functions as coroutines of the spell; their host requests go to the host as
-- one batch, carried out together. Returns their first results, in order.
local function parallel(...)
  local fns = real.pack(...)
  local cos, results, pending = {}, {}, {}
  for i = 1, fns.n do
    if real.type(fns[i]) ~= "function" then
      real.error("parallel: argument " .. i .. " is not a function", 2)
    end
    cos[i] = metered(fns[i])
    pending[i] = {n = 0}
  end
  while true do
    local batch, waiting = {}, {}
    for i = 1, fns.n do
      local answer = pending[i]
      if answer then
        local out = real.pack(real.resume(cos[i], real.unpack(answer, 1, answer.n)))
        pending[i] = nil
        if not out[1] then
          rethrow(out)
          real.error(out[2], 0)
        end
        if real.status(cos[i]) == "suspended" then
          if not is_request(out[2]) then
            real.error("parallel: a function yielded outside a coroutine of its own", 2)
          end
          batch[#batch + 1] = out[2]
          waiting[#waiting + 1] = i
        else
          results[i] = out[2]
        end
      end
    end
    if #batch == 0 then break end
    local answers = real.yield(real.setmetatable({batch = batch}, REQUEST))
    for k, i in real.ipairs(waiting) do pending[i] = answers[k] end
  end
  return real.unpack(results, 1, fns.n)
end

function __library(source, chunk)
  local env = spell_env
  env.parallel = parallel
  local fn, err = real.load(source, "=" .. chunk, "t", env)
  if not fn then real.error(err, 0) end
  fn()
end

-- A coroutine that calls a function of the spell with the given arguments (a callback from
-- the host, run while the spell waits in a host call).
local threads, next_thread = {}, 0
function __callback(fn, args)
  next_thread = next_thread + 1
  threads[next_thread] = metered(function() return fn(real.unpack(args, 1, args.n)) end)
  return next_thread
end

-- Runs one of the spell's coroutines until it ends or asks the host for something.
-- Returns: "request", op, args | "batch", requests | "done", values | "error", message
-- | "limit", why
function __step(id, ...)
  local co = main
  if id ~= 0 then co = threads[id] end
  local results = real.pack(real.resume(co, ...))
  if real.status(co) == "dead" and id ~= 0 then threads[id] = nil end
  if not results[1] then
    local err = results[2]
    if err == LIMIT or stopped ~= nil then
      return "limit", stopped or "instructions"
    end
    if err == MEMORY then
      return "limit", "memory"
    end
    return "error", err
  end
  if real.status(co) == "suspended" then
    local value = results[2]
    if is_request(value) then
      if value.batch then return "batch", value.batch end
      return "request", value.op, value.args
    end
    return "error", "the spell yielded outside a coroutine of its own"
  end
  return "done", real.pack(real.unpack(results, 2, results.n))
end

function __used()
  return used
end
"""
