-- Renews a lease only while the caller holds the task: KEYS stream. ARGV group, consumer,
-- entry. Returns 1 when renewed, 0 when another worker holds it or it is finished.
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
