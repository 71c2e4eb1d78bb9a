-- Move due delayed tasks onto the stream, by Redis's clock. KEYS delayed zset, stream. ARGV
-- limit.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, t in ipairs(due) do
  redis.call('ZREM', KEYS[1], t)
  redis.call('XADD', KEYS[2], '*', 'task', t)
end
return #due
