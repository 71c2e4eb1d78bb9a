-- Takes a shared hold on a lock unless it is held exclusively. KEYS the lock (held
-- exclusively), the zset of shared holds (scored by when each expires, Redis ms). ARGV the
-- holder's token, the hold's time to live (ms). Returns 1 when held, 0 when the lock is held
-- exclusively.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]))
return 1
