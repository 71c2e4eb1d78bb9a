-- Remembers that a job started (or ended), for a day, by Redis's clock, and that it waits in no
-- group any more; reads the record of the runner the event names (no second round trip). KEYS
-- the started zset, the runner's hash (a placeholder when none is named), then each group's
-- waiting zset. ARGV job. Returns the runner's fields and values as HGETALL gives them.
local now = now_secs()
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - 86400))
for i = 3, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return redis.call('HGETALL', KEYS[2])
