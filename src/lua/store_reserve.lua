-- Reserve: KEYS group set, runner hash, reserved-status set, all-runners set, waiting zset,
-- data marker (written with the first record, see [`Marker`]), the runner's history list,
-- the runner's lock, the started-jobs zset, then the members' keys. ARGV max, name, mode
-- ('explicit' or 'demand'), min_free, the members (comma separated), the history entry's
-- detail, the history's length and time to live (seconds), the lock's token ('' takes no lock)
-- and time to live (ms), a queued job to note as waiting first ('' for none) and for how long
-- (seconds), how long a creation counts as free without its lock (seconds), then field/value
-- pairs of the record. A reservation is appended to the history in
-- the same step, and the lock taken when it is free (the third value says whether it was: 1 or
-- 0). -2: the members changed meanwhile.
if ARGV[11] ~= '' and not redis.call('ZSCORE', KEYS[9], ARGV[11]) then
  redis.call('ZADD', KEYS[5], now_secs() + tonumber(ARGV[12]), ARGV[11])
end
if redis.call('EXISTS', KEYS[2]) == 1 then return {-1, redis.call('SCARD', KEYS[1]), 0} end
local held = redis.call('SCARD', KEYS[1])
if ARGV[3] == 'demand' then
  local names = split(ARGV[5])
  if not members_match(KEYS[1], names) then return {-2, 0, 0} end
  local free = free_count(names, 10, '', ARGV[13])
  local want = math.max(waiting_count(KEYS[5]), tonumber(ARGV[4]))
  if free >= want then return {2, free, want} end
end
if held >= tonumber(ARGV[1]) then return {0, held, 0} end
if redis.call('EXISTS', KEYS[6]) == 0 then
  redis.call('HSET', KEYS[6], 'created_at', now_secs(), 'hold_until', 0)
end
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 14))
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[2])
redis.call('RPUSH', KEYS[7], cjson.encode({at = now_secs(), event = 'reserved', detail = ARGV[6]}))
redis.call('LTRIM', KEYS[7], -tonumber(ARGV[7]), -1)
redis.call('EXPIRE', KEYS[7], tonumber(ARGV[8]))
local locked = 0
if ARGV[9] ~= '' and redis.call('SET', KEYS[8], ARGV[9], 'NX', 'PX', tonumber(ARGV[10])) then
  locked = 1
end
return {1, held + 1, locked}
