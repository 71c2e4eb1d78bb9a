-- Remove: KEYS runner hash, all-runners set, the group set of ARGV 2, then the status sets in
-- the order of ARGV 1. ARGV the statuses, the record's group. Releases the group slot.
-- Returns 1 when removed, 0 when there was no record, -2 when its group is another.
local rec = redis.call('HMGET', KEYS[1], 'name', 'group', 'status')
if not rec[1] then return 0 end
if rec[2] ~= ARGV[2] then return -2 end
redis.call('SREM', KEYS[3], rec[1])
redis.call('SREM', status_key(ARGV[1], 4, rec[3]), rec[1])
redis.call('SREM', KEYS[2], rec[1])
redis.call('DEL', KEYS[1])
return 1
