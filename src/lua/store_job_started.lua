-- Remembers that a job started (or ended), for a day, by Redis's clock, and that it waits in no
-- group any more. KEYS the started zset, then each group's waiting zset. ARGV job.
local now = now_secs()
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - 86400))
for i = 2, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return now
