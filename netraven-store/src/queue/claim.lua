-- Claims up to `max` ready tasks of one zone for a worker, each with its own lease and attempt.
-- ARGV: prefix, worker, now_ms, lease_ms, promote_limit, zone ('' = the default zone), max
-- Only the zone's keys are read: a worker never gets another zone's task.
-- Returns a list (empty when nothing is ready) of
-- {id, kind, dedupe, attempt, max_attempts, expires_ms, failures, released}.
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
local want = tonumber(ARGV[7] or '1')
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
local leases = zp .. 'leases'
local expires = now + lease_ms
local out = {}
while #out < want do
  local id = redis.call('LMOVE', ready, inflight, 'RIGHT', 'LEFT')
  if not id then
    break
  end
  local key = p .. 'task:' .. id
  local f = redis.call('HMGET', key, 'kind', 'dedupe', 'max', 'state', 'failures', 'released', 'zone',
    'attempt')
  if f[1] and f[4] == 'ready' and (f[7] or '') == ZONE then
    -- The script is atomic: read-then-write bumps the attempt as HINCRBY would, one call less.
    local attempt = tonumber(f[8] or '0') + 1
    redis.call('HSET', key, 'attempt', attempt, 'state', 'leased', 'worker', worker)
    redis.call('ZADD', leases, expires, id)
    out[#out + 1] = {id, f[1], f[2], attempt, f[3], expires, tonumber(f[5] or '0'), tonumber(f[6] or '0')}
  else
    -- A task whose body is gone (lost data) or that is not ready: drop the stray id.
    redis.call('LREM', inflight, 1, id)
  end
end
return out
