-- Removes dead tasks that died before a time.
-- ARGV: prefix, before_ms, limit, zone ('' = the default zone)
-- Returns the number removed.
local p = ARGV[1]
local ZONE = ARGV[4] or ''
local zp = p
if ZONE ~= '' then
  zp = p .. 'z:' .. ZONE .. ':'
end
local dead = zp .. 'dead'
local ids = redis.call('ZRANGEBYSCORE', dead, '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('ZREM', dead, id)
  local key = p .. 'task:' .. id
  if redis.call('HGET', key, 'state') == 'dead' then
    redis.call('DEL', key)
  end
end
return #ids
