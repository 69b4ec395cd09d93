-- Records a worker's heartbeat and its zone; forgets workers silent for a day.
-- ARGV: prefix, worker, zone ('' = the default zone), now_ms
-- Returns the heartbeat's time in ms.
local p = ARGV[1]
local now = tonumber(ARGV[4])
if now < 0 then
  -- The server's clock (TIME) decides, not the caller's.
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local beats = p .. 'beats'
redis.call('ZADD', beats, now, ARGV[2])
redis.call('HSET', p .. 'beat-zone', ARGV[2], ARGV[3])
if ARGV[3] ~= '' then
  redis.call('SADD', p .. 'zones', ARGV[3])
end
local old = redis.call('ZRANGEBYSCORE', beats, '-inf', '(' .. (now - 86400000), 'LIMIT', 0, 100)
for _, w in ipairs(old) do
  redis.call('ZREM', beats, w)
  redis.call('HDEL', p .. 'beat-zone', w)
end
return now
