-- Takes a scale set's session lease when nobody holds it, with a new fencing token.
-- KEYS the lease, the scale set's state hash. ARGV the holder's token, TTL ms, holder name.
-- Returns the fence (> 0) when taken, 0 when another holds it.
if redis.replicate_commands then redis.replicate_commands() end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
local fence = redis.call('HINCRBY', KEYS[2], 'fence', 1)
local t = redis.call('TIME')
redis.call('HSET', KEYS[2], 'holder', ARGV[3], 'held_since', t[1], 'lease_fence', fence)
return fence
