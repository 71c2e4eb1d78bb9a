-- KEYS the credential record, the runner's index. ARGV the runner, the sealed credential, the
-- time to live (seconds). Seals the credential into a record that waits for one (a warm-pool
-- instance's, `sealed` empty) of that runner, and gives both keys the new time to live.
-- Returns 1 when filled, 0 when the record is gone, another runner's or filled already.
local f = redis.call('HMGET', KEYS[1], 'runner', 'sealed')
if f[1] ~= ARGV[1] or f[2] ~= '' then return 0 end
redis.call('HSET', KEYS[1], 'sealed', ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
return 1
