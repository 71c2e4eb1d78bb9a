-- Takes a lock exclusively when nobody holds it, shared or exclusively. KEYS the lock, the
-- zset of shared holds (scored by when each expires, Redis ms). ARGV the holder's token, the
-- lock's time to live (ms). Expired shared holds are dropped first. Returns 1 when taken, 0
-- when not.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) > 0 then return 0 end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', tonumber(ARGV[2])) then return 1 end
return 0
