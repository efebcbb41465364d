"""The Lua scripts of the Redis bus: every check-and-act on a queue runs atomically on the server.

A queue is three keys: the stream (one entry per message not yet acknowledged or dead, read
through one consumer group), a sorted set ``entry id -> lease deadline (ms)`` holding exactly the
entries in the group's pending list, and the dead-letter stream. Redis' own pending list says who
holds an entry and how many times it was delivered; the sorted set adds what Redis does not keep,
a lease that may differ per ``receive`` and that ``extend`` moves.

A delivery is fenced by (consumer, times delivered): ``ack``, ``nack`` and ``extend`` act only
while the pending list still shows the entry held by that consumer with that count. An ``XACK``
alone would end an entry that another consumer now runs; checking first and acting in the same
script leaves no gap between the check and the act.

Time: lease deadlines are Redis' clock (``TIME``) unless the caller passes its own (a fake clock
in tests, ARGV ``now`` >= 0); the time of a dead letter is always Redis' wall clock.
"""

from __future__ import annotations

from typing import Final

from planweave.constants import REDIS_GROUP

_PRELUDE: Final = f"""
local stream, leases, dead = KEYS[1], KEYS[2], KEYS[3]
local group = '{REDIS_GROUP}'

local function now_ms(arg)
  local n = tonumber(arg)
  if n >= 0 then return n end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function wall_s()
  local t = redis.call('TIME')
  return t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end

-- Who holds a pending entry and how often it was delivered (nil when it is not pending).
local function pending(id)
  local r = redis.pcall('XPENDING', stream, group, id, id, 1)
  if type(r) ~= 'table' or r.err or #r == 0 then return nil, nil end
  return r[1][2], tonumber(r[1][4])
end

local function holds(id, consumer, count)
  local c, n = pending(id)
  return c == consumer and n == tonumber(count)
end

local function forget(id)
  redis.call('XACK', stream, group, id)
  redis.call('XDEL', stream, id)
  redis.call('ZREM', leases, id)
end

-- Move an entry to the dead-letter stream with why, when and how often it was delivered.
local function kill(id, count, reason)
  local e = redis.call('XRANGE', stream, id, id)
  local m = ''
  if #e > 0 then
    local fields = e[1][2]
    for i = 1, #fields, 2 do
      if fields[i] == 'm' then m = fields[i + 1] end
    end
  end
  redis.call('XADD', dead, '*', 'm', m, 'source', id, 'deliveries', count,
    'reason', reason, 'at', wall_s())
  forget(id)
end

-- Dead-letter every expired lease that had its last delivery; drop leases of entries that are
-- no longer pending. Returns how many expired leases are left (available again).
local function reap(now, maxd)
  local offset, left = 0, 0
  while true do
    local ids = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', offset, 100)
    if #ids == 0 then return left end
    for _, id in ipairs(ids) do
      local _, n = pending(id)
      if n == nil then
        redis.call('ZREM', leases, id)
      elseif n >= maxd then
        kill(id, n, 'lease expired after ' .. n .. ' deliveries')
      else
        offset, left = offset + 1, left + 1
      end
    end
  end
end
"""

RECEIVE: Final = (
    _PRELUDE
    + """
-- ARGV: consumer, max items, lease ms, now, max deliveries.
-- Lease expired entries first (dead-lettering those delivered enough), then new entries.
-- Returns {id, fields, deliveries, ...} followed by the ms until the next lease ends (-1: none)
-- and the id of the stream's last entry, to wait for newer ones from.
local consumer, want = ARGV[1], tonumber(ARGV[2])
local lease, now, maxd = tonumber(ARGV[3]), now_ms(ARGV[4]), tonumber(ARGV[5])
local out, got = {}, 0
while got < want do
  local ids = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, 100)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    local _, n = pending(id)
    if n == nil then
      redis.call('ZREM', leases, id)
    elseif n >= maxd then
      kill(id, n, 'lease expired after ' .. n .. ' deliveries')
    elseif got < want then
      local claimed = redis.call('XCLAIM', stream, group, consumer, 0, id)
      if #claimed == 0 or not claimed[1][2] then
        forget(id)
      else
        redis.call('ZADD', leases, now + lease, id)
        got = got + 1
        out[#out + 1] = id
        out[#out + 1] = claimed[1][2]
        out[#out + 1] = n + 1
      end
    end
  end
end
if got < want then
  local args = {'XREADGROUP', 'GROUP', group, consumer, 'COUNT', want - got,
    'STREAMS', stream, '>'}
  local r = redis.pcall(unpack(args))
  if type(r) == 'table' and r.err then
    if string.sub(r.err, 1, 7) ~= 'NOGROUP' then return redis.error_reply(r.err) end
    redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
    r = redis.call(unpack(args))
  end
  -- A read that finds nothing does not make the consumer known: make it so, so that a worker
  -- waiting for work is listed (XINFO CONSUMERS, planweave status) before any arrives.
  redis.call('XGROUP', 'CREATECONSUMER', stream, group, consumer)
  if r then
    for _, entry in ipairs(r[1][2]) do
      redis.call('ZADD', leases, now + lease, entry[1])
      out[#out + 1] = entry[1]
      out[#out + 1] = entry[2]
      out[#out + 1] = 1
    end
  end
end
local first = redis.call('ZRANGE', leases, 0, 0, 'WITHSCORES')
if #first == 0 then
  out[#out + 1] = -1
else
  out[#out + 1] = math.max(0, tonumber(first[2]) - now)
end
local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
if #last == 0 then out[#out + 1] = '0-0' else out[#out + 1] = last[1][1] end
return out
"""
)

ACK: Final = (
    _PRELUDE
    + """
-- ARGV: id, consumer, deliveries, ... (one triple per delivery).
for i = 1, #ARGV, 3 do
  if holds(ARGV[i], ARGV[i + 1], ARGV[i + 2]) then forget(ARGV[i]) end
end
return 0
"""
)

NACK: Final = (
    _PRELUDE
    + """
-- ARGV: id, consumer, deliveries, now, max deliveries, reason.
-- The entry's lease ends now (it is delivered again at once), or it dies on its last delivery.
local id, consumer, count = ARGV[1], ARGV[2], tonumber(ARGV[3])
if not holds(id, consumer, count) then return 0 end
if count >= tonumber(ARGV[5]) then
  kill(id, count, ARGV[6])
else
  redis.call('ZADD', leases, now_ms(ARGV[4]), id)
end
return 1
"""
)

EXTEND: Final = (
    _PRELUDE
    + """
-- ARGV: id, consumer, deliveries, now, lease ms. Also resets the entry's idle time (JUSTID
-- keeps its delivery count), so Redis tools see a held entry as fresh.
local id, consumer = ARGV[1], ARGV[2]
if not holds(id, consumer, ARGV[3]) then return 0 end
redis.call('ZADD', leases, now_ms(ARGV[4]) + tonumber(ARGV[5]), id)
redis.call('XCLAIM', stream, group, consumer, 0, id, 'JUSTID')
return 1
"""
)

REJECT: Final = (
    _PRELUDE
    + """
-- ARGV: id, consumer, deliveries, reason. Dead-letter an entry that cannot be decoded.
if not holds(ARGV[1], ARGV[2], ARGV[3]) then return 0 end
kill(ARGV[1], tonumber(ARGV[3]), ARGV[4])
return 1
"""
)

DEPTH: Final = (
    _PRELUDE
    + """
-- ARGV: now, max deliveries. Entries never delivered plus those whose lease has expired.
local left = reap(now_ms(ARGV[1]), tonumber(ARGV[2]))
local length = redis.call('XLEN', stream)
local held = 0
local p = redis.pcall('XPENDING', stream, group)
if type(p) == 'table' and not p.err then held = tonumber(p[1]) end
return length - held + left
"""
)

DEAD_LETTERS: Final = (
    _PRELUDE
    + """
-- ARGV: now, max deliveries. The dead-letter stream, oldest first.
reap(now_ms(ARGV[1]), tonumber(ARGV[2]))
return redis.call('XRANGE', dead, '-', '+')
"""
)

REDRIVE: Final = (
    _PRELUDE
    + """
-- ARGV: dead letter id. Put it back on the queue as a new entry.
local e = redis.call('XRANGE', dead, ARGV[1], ARGV[1])
if #e == 0 then return 0 end
local fields, m = e[1][2], ''
for i = 1, #fields, 2 do
  if fields[i] == 'm' then m = fields[i + 1] end
end
redis.call('XADD', stream, '*', 'm', m)
redis.call('XDEL', dead, ARGV[1])
return 1
"""
)

LOCATE: Final = (
    _PRELUDE
    + """
-- ARGV: now, max deliveries, ids... For each id that is still somewhere: id, place
-- (waiting, leased or dead). Acknowledged and lost ids are left out.
reap(now_ms(ARGV[1]), tonumber(ARGV[2]))
local sources = nil
local out = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  if #redis.call('XRANGE', stream, id, id) > 0 then
    local c = pending(id)
    out[#out + 1] = id
    out[#out + 1] = c and 'leased' or 'waiting'
  else
    if sources == nil then
      sources = {}
      for _, e in ipairs(redis.call('XRANGE', dead, '-', '+')) do
        local fields = e[2]
        for j = 1, #fields, 2 do
          if fields[j] == 'source' then sources[fields[j + 1]] = true end
        end
      end
    end
    if sources[id] then
      out[#out + 1] = id
      out[#out + 1] = 'dead'
    end
  end
end
return out
"""
)

SCRIPTS: Final = {
    "receive": RECEIVE,
    "ack": ACK,
    "nack": NACK,
    "extend": EXTEND,
    "reject": REJECT,
    "depth": DEPTH,
    "dead_letters": DEAD_LETTERS,
    "redrive": REDRIVE,
    "locate": LOCATE,
}
"""Every script by the name the bus calls it by."""
