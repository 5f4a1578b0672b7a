//! Workflows on Redis, in Lua: where each task is (`st`, a hash by task id: its stream entry,
//! `d` delayed, `w` waiting for its parents, `x` dead), what a done task left (`fin:ID`: `-`, or `+` and its result, kept
//! for the result time-to-live), and what a task pushed after others waits for (`wt:ID`, its
//! own fields and how many parents are pending; `in:ID`, a slot per parent; `dep:ID`, the
//! `child:slot` pairs a task's end fills). The helpers run inside the task scripts, so a
//! parent's ack, the copy of its result and the release of what waited for it are one script:
//! one atomic step, as they are one commit on the manager.
//!
//! A slot's state: `0` pending, `1` done without a result, `2` done with its result (`v`),
//! `3` dead with its reasons (`v`, joined by the unit separator).

use std::sync::LazyLock;

use redis::Script;

use super::lua::with_flow;

/// The unit separator that joins a dead parent's reasons in its slot.
pub(crate) const REASONS_SEPARATOR: char = '\u{1f}';

/// How long a done task's record is kept when the queue does not say (a day, as on the
/// manager).
pub(crate) const DEFAULT_RESULT_TTL_MS: u64 = 24 * 3600 * 1000;

/// KEYS: meta, stream, delayed, dead. ARGV: key prefix, then per node: payload, delay_ms,
/// max_attempts or 0, dedup key or '', runs anyway (0/1), parent count, then per parent
/// `t` or `n` and a task id or an earlier node's index (0-based). Checks every parent first
/// (an unknown one, or a node not before, is an error and nothing is pushed); returns per
/// node its id and whether it is new (1/0).
pub(crate) static PUSH_GRAPH: LazyLock<Script> = LazyLock::new(|| {
    with_flow(
        r#"
local P = ARGV[1]
local nodes = {}
local i = 2
while i <= #ARGV do
  local node = {p = ARGV[i], delay = tonumber(ARGV[i + 1]), m = ARGV[i + 2], dd = ARGV[i + 3],
                any = ARGV[i + 4], parents = {}}
  local n = tonumber(ARGV[i + 5])
  i = i + 6
  for k = 1, n do
    table.insert(node.parents, {ARGV[i], tonumber(ARGV[i + 1])})
    i = i + 2
  end
  table.insert(nodes, node)
end
for at, node in ipairs(nodes) do
  for _, parent in ipairs(node.parents) do
    if parent[1] == 'n' then
      if parent[2] + 1 >= at then
        return refuse('BAD', 'task ' .. (at - 1) .. ' of the graph runs after task ' .. parent[2] .. ', which is not before it: nothing was pushed')
      end
    elseif where(P, parent[2]) == 'unknown' then
      return refuse('BAD', 'task ' .. parent[2] .. ' is not known (never pushed, purged, or done longer ago than the result time-to-live): nothing was pushed')
    end
  end
end
local now = now_ms()
local out = {}
local ids = {}
for at, node in ipairs(nodes) do
  local id, new = take_id(P, KEYS[1], node.dd)
  if not new then
    table.insert(out, {id, 0})
  else
    table.insert(out, {id, 1})
    if #node.parents == 0 then
      enqueue(P, KEYS[2], KEYS[3], id, node.p, node.delay, node.dd, node.m, now)
    else
      local left, dead_parent = 0, nil
      local slots = P .. 'in:' .. id
      for k, parent in ipairs(node.parents) do
        local pid = parent[2]
        if parent[1] == 'n' then pid = ids[pid + 1] end
        local slot = k - 1
        local state = where(P, pid)
        if state == 'done' then
          local r = kept_result(P, pid)
          if r then
            redis.call('HSET', slots, slot .. 'p', pid, slot .. 's', '2', slot .. 'v', r)
          else
            redis.call('HSET', slots, slot .. 'p', pid, slot .. 's', '1', slot .. 'v', '')
          end
        elseif state == 'dead' then
          local reasons = table.concat(redis.call('LRANGE', P .. 'r:' .. pid, 0, -1), '\31')
          redis.call('HSET', slots, slot .. 'p', pid, slot .. 's', '3', slot .. 'v', reasons)
          dead_parent = dead_parent or pid
        else
          redis.call('HSET', slots, slot .. 'p', pid, slot .. 's', '0', slot .. 'v', '')
          left = left + 1
        end
      end
      redis.call('HSET', P .. 'wt:' .. id, 'p', node.p, 'm', node.m, 'd', node.dd, 'e', now,
                 'any', node.any, 'left', left, 'n', #node.parents)
      if dead_parent and node.any ~= '1' then
        bury(P, KEYS[4], id, 'task ' .. dead_parent .. ', which it runs after, died')
      elseif left == 0 then
        wake(P, KEYS[2], id)
      else
        redis.call('HSET', P .. 'st', id, 'w')
        for k, parent in ipairs(node.parents) do
          if redis.call('HGET', slots, (k - 1) .. 's') == '0' then
            local pid = parent[2]
            if parent[1] == 'n' then pid = ids[pid + 1] end
            redis.call('RPUSH', P .. 'dep:' .. pid, id .. ':' .. (k - 1))
          end
        end
      end
    end
  end
  table.insert(ids, id)
end
return out
"#,
    )
});

/// KEYS: stream. ARGV: key prefix, task id. Returns a status code (0 ready, 1 delayed,
/// 2 leased, 3 waiting, 4 done, 5 dead, 6 unknown) and the attempt of a leased task.
pub(crate) static STATUS: LazyLock<Script> = LazyLock::new(|| {
    with_flow(
        r#"
local P, id = ARGV[1], ARGV[2]
local st = redis.call('HGET', P .. 'st', id)
if st == 'd' then return {1, 0} end
if st == 'w' then return {3, 0} end
if st == 'x' then return {5, 0} end
if not st then
  if redis.call('EXISTS', P .. 'fin:' .. id) == 1 then return {4, 0} end
  return {6, 0}
end
local e = redis.call('XRANGE', KEYS[1], st, st)
if #e == 0 then return {6, 0} end
local p = redis.call('XPENDING', KEYS[1], 'monogusa', st, st, 1)
if #p == 0 then return {0, 0} end
return {2, tonumber(fields(e[1][2]).a) + tonumber(p[1][4])}
"#,
    )
});

/// ARGV: key prefix, task ids. For each: 0 (not finished), 1 (done; then its result, or
/// nothing), 2 (dead; then its reasons) or 3 (unknown).
pub(crate) static OUTCOMES: LazyLock<Script> = LazyLock::new(|| {
    with_flow(
        r#"
local P = ARGV[1]
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local state = where(P, id)
  if state == 'done' then
    local r = kept_result(P, id)
    if r then table.insert(out, {1, r}) else table.insert(out, {1}) end
  elseif state == 'dead' then
    table.insert(out, {2, redis.call('LRANGE', P .. 'r:' .. id, 0, -1)})
  elseif state == 'unknown' then
    table.insert(out, {3})
  else
    table.insert(out, {0})
  end
end
return out
"#,
    )
});

/// ARGV: key prefix, task id. Its input slots in order as (parent, state, value), empty for a
/// task pushed without parents, or an error if the task is not in the queue.
pub(crate) static INPUTS: LazyLock<Script> = LazyLock::new(|| {
    with_flow(
        r#"
local P, id = ARGV[1], ARGV[2]
if not redis.call('HGET', P .. 'st', id) then
  return refuse('BAD', 'task ' .. id .. ' is not in the queue (done, purged, or never pushed)')
end
local n = tonumber(redis.call('HGET', P .. 'wt:' .. id, 'n') or '0')
local slots = P .. 'in:' .. id
local out = {}
for k = 0, n - 1 do
  local f = redis.call('HMGET', slots, k .. 'p', k .. 's', k .. 'v')
  table.insert(out, {tonumber(f[1]), tonumber(f[2]), f[3]})
end
return out
"#,
    )
});
