-- Reads the marker, writing it when missing: KEYS marker. ARGV hold secs when written now.
-- Returns {created_at, hold_until, written_now}.
local m = redis.call('HMGET', KEYS[1], 'created_at', 'hold_until')
if m[1] then return {tonumber(m[1]), tonumber(m[2] or '0'), 0} end
local now = now_secs()
local hold = 0
if tonumber(ARGV[1]) > 0 then hold = now + tonumber(ARGV[1]) end
redis.call('HSET', KEYS[1], 'created_at', now, 'hold_until', hold)
return {now, hold, 1}
