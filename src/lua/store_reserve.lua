-- Reserve: KEYS group set, runner hash, reserved-status set, all-runners set, waiting zset,
-- data marker (written with the first record, see [`Marker`]), the runner's history list,
-- the runner's lock, the started-jobs zset, then the members' keys, then the warm and the
-- creating status sets. ARGV max, name, mode
-- ('explicit' or 'demand'), min_free, the members (comma separated), the history entry's
-- detail, the history's length and time to live (seconds), the lock's token ('' takes no lock)
-- and time to live (ms), a queued job to note as waiting first ('' for none) and for how long
-- (seconds), how long a creation counts as free without its lock (seconds), then field/value
-- pairs of the record. A reservation is appended to the history in
-- the same step, and the lock taken when it is free (the third value says whether it was: 1 or
-- 0). -2: the members changed meanwhile. {3, i, locked}: for demand, the warm member i (from
-- 1) was taken instead (see below).
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
  -- A warm-pool instance of the group serves the demand before a new slot is taken: a hot
  -- one first, then a stopped one, the oldest of each first. It becomes a creation for the
  -- job (created now, so that the free-runner rule counts it while it is made).
  local best, best_rank, best_at = nil, nil, nil
  -- Only a manager with warm instances (any group's) looks at the members again.
  local any_warm = redis.call('SCARD', KEYS[#KEYS - 1]) > 0
  for i, m in ipairs(any_warm and names or {}) do
    local f = redis.call('HMGET', KEYS[10 + 2 * (i - 1)], 'status', 'pool', 'created_at')
    if f[1] == 'warm' then
      local rank = (f[2] == 'hot') and 0 or 1
      local at = tonumber(f[3] or '0')
      if not best or rank < best_rank or (rank == best_rank and at < best_at) then
        best, best_rank, best_at = i, rank, at
      end
    end
  end
  if best then
    local hash, lock = KEYS[10 + 2 * (best - 1)], KEYS[10 + 2 * (best - 1) + 1]
    local job = ''
    for j = 14, #ARGV - 1, 2 do
      if ARGV[j] == 'created_for_job' then job = ARGV[j + 1] end
    end
    redis.call('HSET', hash, 'status', 'creating', 'created_at', now_secs())
    if job ~= '' then redis.call('HSET', hash, 'created_for_job', job) end
    redis.call('SMOVE', KEYS[#KEYS - 1], KEYS[#KEYS], names[best])
    local locked = 0
    if ARGV[9] ~= '' and redis.call('SET', lock, ARGV[9], 'NX', 'PX', tonumber(ARGV[10])) then
      locked = 1
    end
    return {3, best, locked}
  end
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
