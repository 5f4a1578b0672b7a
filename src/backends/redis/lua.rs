//! The Lua every script shares, prepended to its body: small helpers (`fields`, `now_ms`,
//! `refuse`), and the workflow helpers the task scripts call (where each task is, a done
//! task's record, filling and releasing what waits for it; the keys are described in
//! `flow`).

use redis::Script;

/// Shared helpers, prepended to the scripts that need them.
const HELPERS: &str = r#"
local function fields(flat)
  local r = {}
  for j = 1, #flat, 2 do r[flat[j]] = flat[j + 1] end
  return r
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function refuse(kind, message)
  return redis.error_reply('MONOGUSA ' .. kind .. ' ' .. message)
end
"#;

/// A script with the shared helpers before its body.
pub(crate) fn with_helpers(body: &str) -> Script {
    Script::new(&format!("{HELPERS}{body}"))
}

/// The helpers the task scripts call (`P` is the queue's key prefix).
const FLOW: &str = r#"
-- A new task's id, or the id of the task its dedup key `dd` names (then `false`: not new).
local function take_id(P, meta, dd)
  if dd ~= '' then
    local existing = redis.call('GET', P .. 'dd:' .. dd)
    if existing then return tonumber(existing), false end
  end
  local id = redis.call('HINCRBY', meta, 'ids', 1)
  if dd ~= '' then redis.call('SET', P .. 'dd:' .. dd, id) end
  return id, true
end
-- New task `id` goes to the stream, or to the delayed set for `delay` ms.
local function enqueue(P, stream, delayed, id, p, delay, dd, maxa, now)
  if delay > 0 then
    redis.call('ZADD', delayed, now + delay, cmsgpack.pack({id, 0, now, p, dd, maxa}))
    redis.call('HSET', P .. 'st', id, 'd')
  else
    local entry = redis.call('XADD', stream, '*', 't', id, 'a', 0, 'e', now, 'p', p, 'd', dd, 'm', maxa)
    redis.call('HSET', P .. 'st', id, entry)
  end
end
-- A waiting task's parents are all in: it goes to the stream.
local function wake(P, stream, child)
  local w = fields(redis.call('HGETALL', P .. 'wt:' .. child))
  local entry = redis.call('XADD', stream, '*', 't', child, 'a', 0, 'e', w.e, 'p', w.p, 'd', w.d, 'm', w.m)
  redis.call('HSET', P .. 'st', child, entry)
end
-- A waiting task dies with its parent, saying why.
local function bury(P, dead, child, reason)
  local w = fields(redis.call('HGETALL', P .. 'wt:' .. child))
  redis.call('RPUSH', P .. 'r:' .. child, reason)
  redis.call('XADD', dead, '*', 't', child, 'a', 0, 'e', w.e, 'p', w.p, 'd', w.d)
  redis.call('HSET', P .. 'st', child, 'x')
end
-- Fills a pending slot; how many are still pending (-1: the slot was not pending).
local function fill(P, child, slot, state, value)
  local key = P .. 'in:' .. child
  if redis.call('HGET', key, slot .. 's') ~= '0' then return -1 end
  redis.call('HSET', key, slot .. 's', state, slot .. 'v', value)
  return redis.call('HINCRBY', P .. 'wt:' .. child, 'left', -1)
end
-- Task `id` is done (`result` false for none): the slots waiting for it are filled, and the
-- tasks with nothing pending left go to the stream.
local function released_by(P, stream, id, result)
  local key = P .. 'dep:' .. id
  local deps = redis.call('LRANGE', key, 0, -1)
  if #deps == 0 then return end
  redis.call('DEL', key)
  local state, value = '1', ''
  if result then state, value = '2', result end
  for _, d in ipairs(deps) do
    local child, slot = string.match(d, '(%d+):(%d+)')
    if fill(P, child, slot, state, value) == 0 and redis.call('HGET', P .. 'st', child) == 'w' then
      wake(P, stream, child)
    end
  end
end
-- Task `id` died: each task waiting for it that runs anyway gets its reasons; every other
-- one dies too, and so on down.
local function died(P, stream, dead, id)
  local work = {id}
  while #work > 0 do
    local parent = table.remove(work)
    local key = P .. 'dep:' .. parent
    local deps = redis.call('LRANGE', key, 0, -1)
    if #deps > 0 then
      redis.call('DEL', key)
      local reasons = table.concat(redis.call('LRANGE', P .. 'r:' .. parent, 0, -1), '\31')
      for _, d in ipairs(deps) do
        local child, slot = string.match(d, '(%d+):(%d+)')
        local waiting = redis.call('HGET', P .. 'st', child) == 'w'
        local left = fill(P, child, slot, '3', reasons)
        if redis.call('HGET', P .. 'wt:' .. child, 'any') == '1' then
          if left == 0 and waiting then wake(P, stream, child) end
        elseif waiting then
          bury(P, dead, child, 'task ' .. parent .. ', which it runs after, died')
          table.insert(work, child)
        end
      end
    end
  end
end
-- Task `id` is done: its record (and result) for `ttl` ms, nothing of its waiting.
local function finish(P, stream, id, result, ttl)
  redis.call('HDEL', P .. 'st', id)
  redis.call('DEL', P .. 'in:' .. id, P .. 'wt:' .. id)
  if tonumber(ttl) > 0 then
    -- One string: '-' for none, '+' and the result (one command per ack).
    local kept = '-'
    if result then kept = '+' .. result end
    redis.call('SET', P .. 'fin:' .. id, kept, 'PX', ttl)
  end
  released_by(P, stream, id, result)
end
-- What done task `id` returned: the result, or false (none, or not kept).
local function kept_result(P, id)
  local kept = redis.call('GET', P .. 'fin:' .. id)
  if kept and string.sub(kept, 1, 1) == '+' then return string.sub(kept, 2) end
  return false
end
-- Where task `id` is: 'done', 'dead', 'pending' or 'unknown'.
local function where(P, id)
  local st = redis.call('HGET', P .. 'st', id)
  if st == 'x' then return 'dead' end
  if st then return 'pending' end
  if redis.call('EXISTS', P .. 'fin:' .. id) == 1 then return 'done' end
  return 'unknown'
end
"#;

/// A script with the shared helpers and the workflow helpers before its body.
pub(crate) fn with_flow(body: &str) -> Script {
    with_helpers(&format!("{FLOW}\n{body}"))
}
