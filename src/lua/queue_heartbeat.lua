-- A worker says it is alive: KEYS workers zset. ARGV consumer, forget-after secs. Scores are
-- Redis seconds; members not heard of for ARGV[2] seconds are removed.
local now = tonumber(redis.call('TIME')[1])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return now
