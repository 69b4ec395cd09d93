-- Queues tasks, in order, each unless a live task (an earlier one of the batch included) holds
-- its dedupe key.
-- ARGV: prefix, now_ms, then six per task: id, kind_json, dedupe ('' = none), max_attempts,
--       run_at_ms, zone ('' = the default zone)
-- Returns one reply per task, in order: {1, id} when queued, {0, existing_id} for a duplicate.
local p = ARGV[1]
local now = tonumber(ARGV[2])
if now < 0 then
  -- The server's clock (TIME) decides, not the caller's.
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function enqueue(id, kind, dk, max, run_at, ZONE)
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
  local zp = p
  if ZONE ~= '' then
    zp = p .. 'z:' .. ZONE .. ':'
  end
  local state = 'ready'
  if tonumber(run_at) > now then
    state = 'delayed'
  end
  redis.call('HSET', p .. 'task:' .. id, 'kind', kind, 'dedupe', dk, 'attempt', 0,
    'max', max, 'state', state, 'zone', ZONE)
  if ZONE ~= '' then
    redis.call('SADD', p .. 'zones', ZONE)
  end
  if state == 'delayed' then
    redis.call('ZADD', zp .. 'delayed', tonumber(run_at), id)
  else
    redis.call('LPUSH', zp .. 'ready', id)
  end
  return {1, id}
end

local out = {}
for i = 3, #ARGV, 6 do
  out[#out + 1] = enqueue(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5])
end
return out
