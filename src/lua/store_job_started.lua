-- Remembers that a job started (or ended), for a day, by Redis's clock: KEYS started zset.
-- ARGV job.
local now = now_secs()
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - 86400))
return now
