//! The Lua scripts: each runs atomically in Redis, so every operation that reads and then
//! writes (a dedup check and a push, a lease check and an ack) is one step, as under the
//! manager's lock. All keys of one object share its hash tag.

use std::sync::LazyLock;

use redis::Script;

use super::lua::{with_flow, with_helpers};

/// KEYS: meta. ARGV: kind, tag, name. Records kind and tag, or checks them.
pub(crate) static OPEN: LazyLock<Script> = LazyLock::new(|| {
    with_helpers(
        r#"
local kind = redis.call('HGET', KEYS[1], 'kind')
if not kind then
  redis.call('HSET', KEYS[1], 'kind', ARGV[1], 'tag', ARGV[2])
  return redis.status_reply('OK')
end
local tag = redis.call('HGET', KEYS[1], 'tag')
if kind ~= ARGV[1] then
  return refuse('WRONG', ARGV[3] .. ' is a ' .. kind .. ', not a ' .. ARGV[1])
end
if tag ~= ARGV[2] then
  return refuse('WRONG', ARGV[3] .. ' holds ' .. tag .. ', not ' .. ARGV[2])
end
return redis.status_reply('OK')
"#,
    )
});

/// KEYS: meta, stream. ARGV: lease_ms, max_attempts, backoff_ms, max_backoff_ms,
/// result_ttl_ms. Creates the queue's settings and consumer group once (the result
/// time-to-live also on a queue made before it was kept); returns the settings in force.
pub(crate) static TASKS_SETUP: LazyLock<Script> = LazyLock::new(|| {
    with_helpers(
        r#"
if redis.call('HEXISTS', KEYS[1], 'lease') == 0 then
  redis.call('HSET', KEYS[1], 'lease', ARGV[1], 'attempts', ARGV[2], 'backoff', ARGV[3], 'max_backoff', ARGV[4])
  if redis.call('EXISTS', KEYS[2]) == 0 or #redis.call('XINFO', 'GROUPS', KEYS[2]) == 0 then
    redis.call('XGROUP', 'CREATE', KEYS[2], 'monogusa', '0', 'MKSTREAM')
  end
end
redis.call('HSETNX', KEYS[1], 'ttl', ARGV[5])
return redis.call('HMGET', KEYS[1], 'lease', 'attempts', 'backoff', 'max_backoff', 'ttl')
"#,
    )
});

/// KEYS: meta, stream, delayed. ARGV: key prefix, then (payload, delay_ms, max_attempts or 0,
/// dedup key or '') per task. Returns the ids.
pub(crate) static PUSH: LazyLock<Script> = LazyLock::new(|| {
    with_flow(
        r#"
local now = now_ms()
local out = {}
local i = 2
while i <= #ARGV do
  local p, delay, maxa, dd = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
  local id, new = take_id(ARGV[1], KEYS[1], dd)
  if new then enqueue(ARGV[1], KEYS[2], KEYS[3], id, p, delay, dd, maxa, now) end
  table.insert(out, id)
  i = i + 4
end
return out
"#,
    )
});

/// The part of a take that never blocks. KEYS: meta, stream, delayed, dead. ARGV: consumer,
/// count, key prefix. Moves due delayed tasks to the stream, reclaims expired leases (to the
/// dead letters if out of attempts), then reads new entries. Returns rows of
/// (entry, id, attempt, enqueued, payload, lease_until).
pub(crate) static TAKE: LazyLock<Script> = LazyLock::new(|| {
    with_flow(
        r#"
local now = now_ms()
local lease = tonumber(redis.call('HGET', KEYS[1], 'lease'))
local maxdef = tonumber(redis.call('HGET', KEYS[1], 'attempts'))
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1000)
for _, m in ipairs(due) do
  local f = cmsgpack.unpack(m)
  local entry = redis.call('XADD', KEYS[2], '*', 't', f[1], 'a', f[2], 'e', f[3], 'p', f[4], 'd', f[5], 'm', f[6])
  redis.call('HSET', ARGV[3] .. 'st', f[1], entry)
  redis.call('ZREM', KEYS[3], m)
end
local want = tonumber(ARGV[2])
local out = {}
local claimed = redis.call('XAUTOCLAIM', KEYS[2], 'monogusa', ARGV[1], lease, '0-0', 'COUNT', want)
for _, e in ipairs(claimed[2]) do
  if e[2] then
    local f = fields(e[2])
    local pend = redis.call('XPENDING', KEYS[2], 'monogusa', e[1], e[1], 1)
    local attempt = tonumber(f.a) + tonumber(pend[1][4])
    local maxa = tonumber(f.m)
    if not maxa or maxa == 0 then maxa = maxdef end
    redis.call('RPUSH', ARGV[3] .. 'r:' .. f.t, 'its lease expired')
    if attempt > maxa then
      redis.call('XACK', KEYS[2], 'monogusa', e[1])
      redis.call('XDEL', KEYS[2], e[1])
      redis.call('XADD', KEYS[4], '*', 't', f.t, 'a', attempt - 1, 'e', f.e, 'p', f.p, 'd', f.d)
      redis.call('HSET', ARGV[3] .. 'st', f.t, 'x')
      died(ARGV[3], KEYS[2], KEYS[4], f.t)
    else
      table.insert(out, {e[1], f.t, attempt, f.e, f.p, now + lease})
    end
  end
end
if #out < want then
  local r = redis.call('XREADGROUP', 'GROUP', 'monogusa', ARGV[1], 'COUNT', want - #out, 'STREAMS', KEYS[2], '>')
  if r then
    for _, e in ipairs(r[1][2]) do
      local f = fields(e[2])
      table.insert(out, {e[1], f.t, tonumber(f.a) + 1, f.e, f.p, now + lease})
    end
  end
end
return out
"#,
    )
});

/// The lease check every lease operation starts with (leaves `p`, `f` and `attempt` set, or
/// returns the refusal value).
const OWNED: &str = r#"
local lease = tonumber(redis.call('HGET', KEYS[1], 'lease'))
local p = redis.call('XPENDING', KEYS[2], 'monogusa', ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[1] or tonumber(p[1][3]) > lease then return EXPIRED end
local e = redis.call('XRANGE', KEYS[2], ARGV[3], ARGV[3])
if #e == 0 then return EXPIRED end
local f = fields(e[1][2])
local attempt = tonumber(f.a) + tonumber(p[1][4])
"#;

fn lease_script(expired: &str, body: &str) -> Script {
    with_flow(&format!("local EXPIRED = {expired}\n{}\n{body}", OWNED))
}

/// KEYS: meta, stream. ARGV: consumer, key prefix, entry, has a result (0/1), the result,
/// the result time-to-live (ms). Keeps the done task's record (and result) for it, and fills
/// the slots of the tasks waiting for it (releasing those with nothing left pending), in the
/// same script. Returns 0 (acked) or 1 (expired).
pub(crate) static ACK: LazyLock<Script> = LazyLock::new(|| {
    lease_script(
        "1",
        r#"
redis.call('XACK', KEYS[2], 'monogusa', ARGV[3])
redis.call('XDEL', KEYS[2], ARGV[3])
redis.call('HINCRBY', KEYS[1], 'done', 1)
redis.call('DEL', ARGV[2] .. 'r:' .. f.t)
if f.d ~= '' then redis.call('DEL', ARGV[2] .. 'dd:' .. f.d) end
local result = false
if ARGV[4] == '1' then result = ARGV[5] end
finish(ARGV[2], KEYS[2], f.t, result, ARGV[6])
return 0
"#,
    )
});

/// KEYS: meta, stream. ARGV: consumer, key prefix, entry, has a result (0/1), the result,
/// the result time-to-live (ms), then the writes: `a` counter-key delta, `i` dict-key field value, `r` dict-key field,
/// `s` value-key value, `p` payload delay_ms max_attempts dedup (a push to this queue). The
/// ack and its writes, all or none: each key's type is checked first, the counters' adds are
/// undone if one overflows, the rest cannot fail. Returns 0 (acked) or 1 (expired).
pub(crate) static ACK_WITH: LazyLock<Script> = LazyLock::new(|| {
    lease_script(
        "1",
        r#"
local P = ARGV[2]
local ops = {}
local i = 7
while i <= #ARGV do
  local op = ARGV[i]
  if op == 'a' or op == 'r' or op == 's' then
    table.insert(ops, {op, ARGV[i + 1], ARGV[i + 2]}); i = i + 3
  elseif op == 'i' then
    table.insert(ops, {op, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]}); i = i + 4
  else
    table.insert(ops, {op, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]}); i = i + 5
  end
end
for _, o in ipairs(ops) do
  if o[1] ~= 'p' then
    local t = redis.call('TYPE', o[2]).ok
    local want = 'string'
    if o[1] == 'i' or o[1] == 'r' then want = 'hash' end
    if t ~= 'none' and t ~= want then
      return refuse('BAD', o[2] .. ' holds a ' .. t .. ', not a ' .. want .. ': nothing was applied')
    end
  end
end
local before = {}
for _, o in ipairs(ops) do
  if o[1] == 'a' then
    if before[o[2]] == nil then before[o[2]] = redis.call('GET', o[2]) end
    local r = redis.pcall('INCRBY', o[2], o[3])
    if type(r) == 'table' and r.err then
      for key, value in pairs(before) do
        if value then redis.call('SET', key, value) else redis.call('DEL', key) end
      end
      return refuse('MISUSE', 'adding ' .. o[3] .. ' to ' .. o[2] .. ' overflows i64: nothing was applied')
    end
  end
end
local now = now_ms()
for _, o in ipairs(ops) do
  if o[1] == 'i' then
    redis.call('HSET', o[2], o[3], o[4])
  elseif o[1] == 'r' then
    redis.call('HDEL', o[2], o[3])
  elseif o[1] == 's' then
    redis.call('SET', o[2], o[3])
  elseif o[1] == 'p' then
    local id, new = take_id(P, KEYS[1], o[5])
    if new then enqueue(P, KEYS[2], P .. 'z', id, o[2], tonumber(o[3]), o[5], o[4], now) end
  end
end
redis.call('XACK', KEYS[2], 'monogusa', ARGV[3])
redis.call('XDEL', KEYS[2], ARGV[3])
redis.call('HINCRBY', KEYS[1], 'done', 1)
redis.call('DEL', P .. 'r:' .. f.t)
if f.d ~= '' then redis.call('DEL', P .. 'dd:' .. f.d) end
local result = false
if ARGV[4] == '1' then result = ARGV[5] end
finish(P, KEYS[2], f.t, result, ARGV[6])
return 0
"#,
    )
});

/// KEYS: meta, stream, delayed, dead. ARGV: consumer, key prefix, entry, reason, jitter
/// (0.5 to 1), retry (1, or 0: dead at once). Returns -1 (dead), the retry time, or -2
/// (expired).
pub(crate) static FAIL: LazyLock<Script> = LazyLock::new(|| {
    lease_script(
        "-2",
        r#"
local now = now_ms()
redis.call('XACK', KEYS[2], 'monogusa', ARGV[3])
redis.call('XDEL', KEYS[2], ARGV[3])
redis.call('RPUSH', ARGV[2] .. 'r:' .. f.t, ARGV[4])
local maxa = tonumber(f.m)
if not maxa or maxa == 0 then maxa = tonumber(redis.call('HGET', KEYS[1], 'attempts')) end
if attempt >= maxa or ARGV[6] == '0' then
  redis.call('XADD', KEYS[4], '*', 't', f.t, 'a', attempt, 'e', f.e, 'p', f.p, 'd', f.d)
  redis.call('HSET', ARGV[2] .. 'st', f.t, 'x')
  died(ARGV[2], KEYS[2], KEYS[4], f.t)
  return -1
end
local base = tonumber(redis.call('HGET', KEYS[1], 'backoff'))
local cap = tonumber(redis.call('HGET', KEYS[1], 'max_backoff'))
local delay = math.min(base * math.pow(2, attempt - 1), cap)
delay = math.floor(delay * tonumber(ARGV[5]))
redis.call('ZADD', KEYS[3], now + delay, cmsgpack.pack({tonumber(f.t), attempt, tonumber(f.e), f.p, f.d, f.m}))
redis.call('HSET', ARGV[2] .. 'st', f.t, 'd')
return now + delay
"#,
    )
});

/// KEYS: meta, stream. ARGV: consumer, key prefix, entry. Back to the queue now, its attempt
/// counted. Returns 0, or 1 (expired).
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    lease_script(
        "1",
        r#"
redis.call('XACK', KEYS[2], 'monogusa', ARGV[3])
redis.call('XDEL', KEYS[2], ARGV[3])
local entry = redis.call('XADD', KEYS[2], '*', 't', f.t, 'a', attempt, 'e', f.e, 'p', f.p, 'd', f.d, 'm', f.m)
redis.call('HSET', ARGV[2] .. 'st', f.t, entry)
return 0
"#,
    )
});

/// KEYS: meta, stream. ARGV: consumer, key prefix, entry, extra_ms. Renews the lease (for at
/// most the queue's lease timeout: Redis measures idle time per entry). Returns when it now
/// ends, or -1 (expired).
pub(crate) static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    lease_script(
        "-1",
        r#"
redis.call('XCLAIM', KEYS[2], 'monogusa', ARGV[1], 0, ARGV[3], 'JUSTID')
return now_ms() + math.min(lease, tonumber(ARGV[4]))
"#,
    )
});

/// KEYS: meta, stream, delayed, dead. Returns ready, delayed, leased, dead, done, oldest
/// ready's age (ms).
pub(crate) static STATS: LazyLock<Script> = LazyLock::new(|| {
    with_helpers(
        r#"
local now = now_ms()
local leased = redis.call('XPENDING', KEYS[2], 'monogusa')[1]
local ready = redis.call('XLEN', KEYS[2]) - leased
local last = '0-0'
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[2])) do
  local m = fields(g)
  if m['name'] == 'monogusa' then last = m['last-delivered-id'] end
end
local oldest = 0
if ready > 0 then
  local e = redis.call('XRANGE', KEYS[2], '(' .. last, '+', 'COUNT', 1)
  if #e > 0 then oldest = math.max(0, now - tonumber(fields(e[1][2]).e)) end
end
local done = tonumber(redis.call('HGET', KEYS[1], 'done') or '0')
return {ready, redis.call('ZCARD', KEYS[3]), leased, redis.call('XLEN', KEYS[4]), done, oldest}
"#,
    )
});

/// KEYS: dead. ARGV: key prefix. Every dead letter: rows of (id, attempts, enqueued, payload,
/// reasons...).
pub(crate) static DEAD: LazyLock<Script> = LazyLock::new(|| {
    with_helpers(
        r#"
local out = {}
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  local f = fields(e[2])
  table.insert(out, {f.t, f.a, f.e, f.p, redis.call('LRANGE', ARGV[1] .. 'r:' .. f.t, 0, -1)})
end
return out
"#,
    )
});

/// KEYS: stream, dead. ARGV: key prefix, id (or '' for all). Returns how many came back.
pub(crate) static REQUEUE: LazyLock<Script> = LazyLock::new(|| {
    with_helpers(
        r#"
local n = 0
for _, e in ipairs(redis.call('XRANGE', KEYS[2], '-', '+')) do
  local f = fields(e[2])
  if ARGV[2] == '' or f.t == ARGV[2] then
    redis.call('XDEL', KEYS[2], e[1])
    redis.call('DEL', ARGV[1] .. 'r:' .. f.t)
    local entry = redis.call('XADD', KEYS[1], '*', 't', f.t, 'a', 0, 'e', f.e, 'p', f.p, 'd', f.d, 'm', 0)
    redis.call('HSET', ARGV[1] .. 'st', f.t, entry)
    n = n + 1
  end
end
return n
"#,
    )
});

/// KEYS: dead. ARGV: key prefix. Forgets every dead letter; returns how many.
pub(crate) static PURGE: LazyLock<Script> = LazyLock::new(|| {
    with_helpers(
        r#"
local n = 0
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  local f = fields(e[2])
  redis.call('DEL', ARGV[1] .. 'r:' .. f.t, ARGV[1] .. 'in:' .. f.t, ARGV[1] .. 'wt:' .. f.t)
  redis.call('HDEL', ARGV[1] .. 'st', f.t)
  if f.d ~= '' then redis.call('DEL', ARGV[1] .. 'dd:' .. f.d) end
  n = n + 1
end
redis.call('DEL', KEYS[1])
return n
"#,
    )
});

/// KEYS: key. ARGV: new value. Returns the old value (or nil).
pub(crate) static HASH_INSERT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return old
"#,
    )
});

/// KEYS: hash. ARGV: field. Removes it; returns the old value (or nil).
pub(crate) static HASH_REMOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
return old
"#,
    )
});

/// KEYS: key. ARGV: has expected (0/1), expected, new. Returns 1 if swapped.
pub(crate) static COMPARE_AND_SWAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local current = redis.call('GET', KEYS[1])
local matches
if ARGV[1] == '0' then matches = (current == false) else matches = (current == ARGV[2]) end
if matches then
  redis.call('SET', KEYS[1], ARGV[3])
  return 1
end
return 0
"#,
    )
});

/// KEYS: lock. ARGV: token, lease_ms. Takes the lock if free; returns 1 if taken.
pub(crate) static LOCK_TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"#,
    )
});

/// KEYS: lock. ARGV: token, lease_ms. Renews the lease if still the holder; returns 1 if so.
pub(crate) static LOCK_RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#,
    )
});

/// KEYS: lock. ARGV: token. Releases only if still the holder; returns 1 if so.
pub(crate) static LOCK_RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#,
    )
});
