-- Remove: KEYS runner hash, all-runners set, the group set of ARGV 2, then the status sets in
-- the order of ARGV 1, then the runner's history list. ARGV the statuses, the record's group,
-- the history's length and time to live (seconds). Releases the group slot and says so in the
-- history (no second round trip).
-- Returns 1 when removed, 0 when there was no record, -2 when its group is another.
local rec = redis.call('HMGET', KEYS[1], 'name', 'group', 'status')
if not rec[1] then return 0 end
if rec[2] ~= ARGV[2] then return -2 end
redis.call('SREM', KEYS[3], rec[1])
redis.call('SREM', status_key(ARGV[1], 4, rec[3]), rec[1])
redis.call('SREM', KEYS[2], rec[1])
redis.call('DEL', KEYS[1])
local h = KEYS[#KEYS]
redis.call('RPUSH', h, cjson.encode({at = now_secs(), event = 'removed', detail = 'its slot released'}))
redis.call('LTRIM', h, -tonumber(ARGV[3]), -1)
redis.call('EXPIRE', h, tonumber(ARGV[4]))
return 1
