-- Queues a task unless a live task holds its dedupe key.
-- ARGV: prefix, id, kind_json, dedupe ('' = none), max_attempts, run_at_ms, now_ms,
--       zone ('' = the default zone)
-- Returns {1, id} when queued, {0, existing_id} for a duplicate.
local p = ARGV[1]
local id = ARGV[2]
local dk = ARGV[4]
if dk ~= '' then
  local dkey = p .. 'dedupe:' .. dk
  local existing = redis.call('GET', dkey)
  if existing then
    local st = redis.call('HGET', p .. 'task:' .. existing, 'state')
    if st and st ~= 'dead' then
      return {0, existing}
    end
  end
  redis.call('SET', dkey, id)
end
local ZONE = ARGV[8] or ''
local zp = p
if ZONE ~= '' then
  zp = p .. 'z:' .. ZONE .. ':'
end
local run_at = tonumber(ARGV[6])
local now = tonumber(ARGV[7])
if now < 0 then
  -- The server's clock (TIME) decides, not the caller's.
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local state = 'ready'
if run_at > now then
  state = 'delayed'
end
redis.call('HSET', p .. 'task:' .. id, 'kind', ARGV[3], 'dedupe', dk, 'attempt', 0,
  'max', ARGV[5], 'state', state, 'zone', ZONE)
if ZONE ~= '' then
  redis.call('SADD', p .. 'zones', ZONE)
end
if state == 'delayed' then
  redis.call('ZADD', zp .. 'delayed', run_at, id)
else
  redis.call('LPUSH', zp .. 'ready', id)
end
return {1, id}
