-- Shared by the scripts of the runner store (concatenated before each):
-- Lua shared by the scripts that count a group's supply and demand. Every key a script touches
-- is declared (Redis Cluster routes and checks by the declared keys): the group's members come
-- in ARGV as a comma-separated list with their runner hash and lock key in KEYS from index
-- `first` on, two a member; `members_match` checks the list is the group set's members now
-- (else the script answers -2 and the caller reads them again). `free_count` counts the
-- runners of a group that can still take a job (reserved, creating, started or idle, with no
-- job), leaving out `except` and creations nobody works on (reserved or creating, older than
-- `fresh` seconds, with no task holding the runner's lock: their task died, so they will not
-- come unless a health check resumes them). This applies `model::counts_as_free`, whose
-- parameter (`FRESH_CREATION_SECS`) each script receives in ARGV; `waiting_count` counts the group's waiting jobs that have not
-- expired (scores are expiry times in Redis seconds), forgetting the expired ones.
if redis.replicate_commands then redis.replicate_commands() end
local function now_secs() return tonumber(redis.call('TIME')[1]) end
local function split(list)
  local out = {}
  for s in string.gmatch(list, '[^,]+') do out[#out + 1] = s end
  return out
end
local function members_match(group_set, names)
  local set = redis.call('SMEMBERS', group_set)
  if #set ~= #names then return false end
  local seen = {}
  for _, n in ipairs(names) do seen[n] = true end
  for _, m in ipairs(set) do if not seen[m] then return false end end
  return true
end
local function free_count(names, first, except, fresh_secs)
  local n = 0
  local now = now_secs()
  for i, m in ipairs(names) do
    if m ~= except then
      local hash, lock = KEYS[first + 2 * (i - 1)], KEYS[first + 2 * (i - 1) + 1]
      local f = redis.call('HMGET', hash, 'status', 'job_id', 'created_at')
      local s = f[1]
      if (s == 'started' or s == 'idle') and not f[2] then
        n = n + 1
      elseif (s == 'reserved' or s == 'creating') and not f[2] then
        local fresh = tonumber(f[3] or '0') >= now - tonumber(fresh_secs)
        if fresh or redis.call('EXISTS', lock) == 1 then
          n = n + 1
        end
      end
    end
  end
  return n
end
local function waiting_count(key)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. now_secs())
  return redis.call('ZCARD', key)
end
-- The status sets are declared in KEYS from `first` on, in the order of `names`.
local function status_key(names, first, st)
  for i, s in ipairs(split(names)) do
    if s == st then return KEYS[first + i - 1] end
  end
  return nil
end
