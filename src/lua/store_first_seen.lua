-- Records when each suspect was first seen (Redis seconds) and forgets the ones no longer
-- suspected. KEYS suspects zset. ARGV members. Returns their first-seen times, in order.
local now = now_secs()
local keep = {}
for _, m in ipairs(ARGV) do keep[m] = true end
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if not keep[m] then redis.call('ZREM', KEYS[1], m) end
end
local out = {}
for i, m in ipairs(ARGV) do
  redis.call('ZADD', KEYS[1], 'NX', now, m)
  out[i] = tonumber(redis.call('ZSCORE', KEYS[1], m))
end
return out
