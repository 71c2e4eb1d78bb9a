-- What doctor and the metrics show of a credential's budget.
-- KEYS[1] the leases (zset)   KEYS[2] the hourly limit (hash)   KEYS[3] the pauses (hash)
-- Returns {in_flight, limit or '', remaining or '', ms to reset or '', class1, ms left1, ...}.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {redis.call('ZCOUNT', KEYS[1], '(' .. now_ms, '+inf')}
local prim = redis.call('HMGET', KEYS[2], 'limit', 'remaining', 'reset_ms')
local reset = tonumber(prim[3] or '')
if prim[1] and prim[2] and reset and reset > now_ms then
  table.insert(out, prim[1])
  table.insert(out, prim[2])
  table.insert(out, string.format('%.0f', reset - now_ms))
else
  table.insert(out, '')
  table.insert(out, '')
  table.insert(out, '')
end
local p = redis.call('HGETALL', KEYS[3])
for i = 1, #p, 2 do
  local untils = tonumber(p[i + 1]) or 0
  if untils > now_ms then
    table.insert(out, p[i])
    table.insert(out, string.format('%.0f', untils - now_ms))
  end
end
return out
