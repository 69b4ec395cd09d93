-- Acts on a leased task if the caller still holds its lease (fencing by attempt number).
-- ARGV: prefix, id, attempt, op, now_ms, arg, reason
--   op = 'extend'   arg = lease_ms     -> {1, expires_ms}
--   op = 'complete'                    -> {1}
--   op = 'retry'    arg = run_at_ms    -> {1} scheduled, {2} dead
--   op = 'release'                     -> {1}
--   op = 'defer'    arg = run_at_ms    -> {1}
-- retry counts a failure (dead once failures reach max); release and defer count a hand-back.
-- Returns {-1} when the lease was lost (stale).
local p = ARGV[1]
local id = ARGV[2]
local key = p .. 'task:' .. id
local f = redis.call('HMGET', key, 'attempt', 'state', 'worker', 'dedupe', 'max', 'zone')
if not f[1] or f[2] ~= 'leased' or f[1] ~= ARGV[3] then
  return {-1}
end
-- The task's own zone's keys.
local ZONE = f[6] or ''
local zp = p
if ZONE ~= '' then
  zp = p .. 'z:' .. ZONE .. ':'
end
local op = ARGV[4]
local now = tonumber(ARGV[5])
if now < 0 then
  -- The server's clock (TIME) decides, not the caller's.
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local leases = zp .. 'leases'
if op == 'extend' then
  local expires = now + tonumber(ARGV[6])
  redis.call('ZADD', leases, expires, id)
  return {1, expires}
end
redis.call('ZREM', leases, id)
if f[3] then
  redis.call('LREM', p .. 'inflight:' .. f[3], 1, id)
end
local function release_dedupe()
  if f[4] and f[4] ~= '' then
    local dkey = p .. 'dedupe:' .. f[4]
    if redis.call('GET', dkey) == id then
      redis.call('DEL', dkey)
    end
  end
end
if op == 'complete' then
  release_dedupe()
  redis.call('DEL', key)
  return {1}
elseif op == 'retry' then
  local failures = redis.call('HINCRBY', key, 'failures', 1)
  if failures >= tonumber(f[5]) then
    release_dedupe()
    redis.call('HSET', key, 'state', 'dead', 'error', ARGV[7])
    redis.call('HDEL', key, 'worker')
    redis.call('ZADD', zp .. 'dead', now, id)
    return {2}
  end
  redis.call('HSET', key, 'state', 'delayed', 'error', ARGV[7])
  redis.call('HDEL', key, 'worker')
  redis.call('ZADD', zp .. 'delayed', tonumber(ARGV[6]), id)
  return {1}
elseif op == 'defer' then
  redis.call('HINCRBY', key, 'released', 1)
  redis.call('HSET', key, 'state', 'delayed')
  redis.call('HDEL', key, 'worker')
  redis.call('ZADD', zp .. 'delayed', tonumber(ARGV[6]), id)
  return {1}
elseif op == 'release' then
  redis.call('HINCRBY', key, 'released', 1)
  redis.call('HSET', key, 'state', 'ready')
  redis.call('HDEL', key, 'worker')
  redis.call('RPUSH', zp .. 'ready', id)
  return {1}
end
return redis.error_reply('unknown op ' .. op)
