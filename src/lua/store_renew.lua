-- Extends a lock only if this holder still has it. KEYS the lock. ARGV the holder's token, TTL ms.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
