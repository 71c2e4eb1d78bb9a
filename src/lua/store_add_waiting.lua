-- Notes a job as waiting unless it started: KEYS waiting zset, started zset. ARGV job, ttl secs.
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now_secs() + tonumber(ARGV[2]), ARGV[1])
return 1
