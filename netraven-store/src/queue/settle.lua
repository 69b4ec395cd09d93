-- Acts on leased tasks whose caller still holds the lease (fencing by attempt number), each on
-- its own: a lost lease is refused for that task only.
-- ARGV: prefix, now_ms, then five per task: id, attempt, op, arg, reason
--   op = 'extend'   arg = lease_ms     -> {1, expires_ms}
--   op = 'complete'                    -> {1}
--   op = 'retry'    arg = run_at_ms    -> {1} scheduled, {2} dead
--   op = 'release'                     -> {1}
--   op = 'defer'    arg = run_at_ms    -> {1}
-- retry counts a failure (dead once failures reach max); release and defer count a hand-back.
-- Returns one reply per task, in order; {-1} when that task's lease was lost (stale).
local p = ARGV[1]
local now = tonumber(ARGV[2])
if now < 0 then
  -- The server's clock (TIME) decides, not the caller's.
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local ops = {extend = true, complete = true, retry = true, release = true, defer = true}
-- Check every op before writing anything: a bad batch changes nothing.
for i = 3, #ARGV, 5 do
  if not ops[ARGV[i + 2]] then
    return redis.error_reply('unknown op ' .. tostring(ARGV[i + 2]))
  end
end

local function settle(id, attempt, op, arg, reason)
  local key = p .. 'task:' .. id
  local f = redis.call('HMGET', key, 'attempt', 'state', 'worker', 'dedupe', 'max', 'zone')
  if not f[1] or f[2] ~= 'leased' or f[1] ~= attempt then
    return {-1}
  end
  -- The task's own zone's keys.
  local ZONE = f[6] or ''
  local zp = p
  if ZONE ~= '' then
    zp = p .. 'z:' .. ZONE .. ':'
  end
  local leases = zp .. 'leases'
  if op == 'extend' then
    local expires = now + tonumber(arg)
    redis.call('ZADD', leases, expires, id)
    return {1, expires}
  end
  redis.call('ZREM', leases, id)
  if f[3] then
    -- From the tail: the oldest claims sit there, and they are usually settled first.
    redis.call('LREM', p .. 'inflight:' .. f[3], -1, id)
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
      redis.call('HSET', key, 'state', 'dead', 'error', reason)
      redis.call('HDEL', key, 'worker')
      redis.call('ZADD', zp .. 'dead', now, id)
      return {2}
    end
    redis.call('HSET', key, 'state', 'delayed', 'error', reason)
    redis.call('HDEL', key, 'worker')
    redis.call('ZADD', zp .. 'delayed', tonumber(arg), id)
    return {1}
  elseif op == 'defer' then
    redis.call('HINCRBY', key, 'released', 1)
    redis.call('HSET', key, 'state', 'delayed')
    redis.call('HDEL', key, 'worker')
    redis.call('ZADD', zp .. 'delayed', tonumber(arg), id)
    return {1}
  end
  -- release
  redis.call('HINCRBY', key, 'released', 1)
  redis.call('HSET', key, 'state', 'ready')
  redis.call('HDEL', key, 'worker')
  redis.call('RPUSH', zp .. 'ready', id)
  return {1}
end

local out = {}
for i = 3, #ARGV, 5 do
  out[#out + 1] = settle(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4])
end
return out
