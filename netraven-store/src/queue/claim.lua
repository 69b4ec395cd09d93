-- Claims the next ready task for a worker.
-- ARGV: prefix, worker, now_ms, lease_ms, promote_limit, zone ('' = the default zone)
-- Only the zone's keys are read: a worker never gets another zone's task.
-- Returns nil, or {id, kind, dedupe, attempt, max_attempts, expires_ms, failures, released}.
local p = ARGV[1]
local worker = ARGV[2]
local now = tonumber(ARGV[3])
if now < 0 then
  -- The server's clock (TIME) decides, not the caller's.
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local lease_ms = tonumber(ARGV[4])
local ZONE = ARGV[6] or ''
local zp = p
if ZONE ~= '' then
  zp = p .. 'z:' .. ZONE .. ':'
end
local ready = zp .. 'ready'
local delayed = zp .. 'delayed'
-- Promote delayed tasks that came due (oldest first, to the back of the ready list).
local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, tonumber(ARGV[5]))
for _, id in ipairs(due) do
  redis.call('ZREM', delayed, id)
  if redis.call('HGET', p .. 'task:' .. id, 'state') == 'delayed' then
    redis.call('HSET', p .. 'task:' .. id, 'state', 'ready')
    redis.call('LPUSH', ready, id)
  end
end
local inflight = p .. 'inflight:' .. worker
while true do
  local id = redis.call('LMOVE', ready, inflight, 'RIGHT', 'LEFT')
  if not id then
    return nil
  end
  local key = p .. 'task:' .. id
  local f = redis.call('HMGET', key, 'kind', 'dedupe', 'max', 'state', 'failures', 'released', 'zone')
  if f[1] and f[4] == 'ready' and (f[7] or '') == ZONE then
    local attempt = redis.call('HINCRBY', key, 'attempt', 1)
    local expires = now + lease_ms
    redis.call('HSET', key, 'state', 'leased', 'worker', worker)
    redis.call('ZADD', zp .. 'leases', expires, id)
    return {id, f[1], f[2], attempt, f[3], expires, tonumber(f[5] or '0'), tonumber(f[6] or '0')}
  end
  -- A task whose body is gone (lost data) or that is not ready: drop the stray id.
  redis.call('LREM', inflight, 1, id)
end
