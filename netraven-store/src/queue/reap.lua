-- Returns tasks whose leases expired to the back of the ready list and promotes delayed tasks
-- that came due.
-- ARGV: prefix, now_ms, limit, zone ('' = the default zone): one zone's keys per call.
-- Returns {expired, promoted}.
local p = ARGV[1]
local now = tonumber(ARGV[2])
if now < 0 then
  -- The server's clock (TIME) decides, not the caller's.
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local limit = tonumber(ARGV[3])
local ZONE = ARGV[4] or ''
local zp = p
if ZONE ~= '' then
  zp = p .. 'z:' .. ZONE .. ':'
end
local leases = zp .. 'leases'
local ready = zp .. 'ready'
local expired = 0
local ids = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  redis.call('ZREM', leases, id)
  local key = p .. 'task:' .. id
  local worker = redis.call('HGET', key, 'worker')
  if worker then
    redis.call('LREM', p .. 'inflight:' .. worker, 1, id)
  end
  if redis.call('HGET', key, 'state') == 'leased' then
    redis.call('HSET', key, 'state', 'ready')
    redis.call('HDEL', key, 'worker')
    redis.call('LPUSH', ready, id)
    expired = expired + 1
  end
end
local promoted = 0
local due = redis.call('ZRANGEBYSCORE', zp .. 'delayed', '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(due) do
  redis.call('ZREM', zp .. 'delayed', id)
  local key = p .. 'task:' .. id
  if redis.call('HGET', key, 'state') == 'delayed' then
    redis.call('HSET', key, 'state', 'ready')
    redis.call('LPUSH', ready, id)
    promoted = promoted + 1
  end
end
return {expired, promoted}
