-- Gives up a reservation made for demand that others now cover. KEYS group set, runner hash,
-- waiting zset, all-runners set, the status sets (in the order of ARGV 4), then the members'
-- keys. ARGV the members, name, min_free, the statuses, how long a creation counts as free
-- without its lock (seconds). Only a runner not registered yet
-- (reserved or creating, no forge id) is given up. Returns 1 when it was, -2 when the members
-- changed meanwhile.
local rec = redis.call('HMGET', KEYS[2], 'status', 'forge_id', 'instance_id')
if not rec[1] or rec[2] or rec[3] then return 0 end
if rec[1] ~= 'reserved' and rec[1] ~= 'creating' then return 0 end
local names = split(ARGV[1])
if not members_match(KEYS[1], names) then return -2 end
local statuses = #split(ARGV[4])
local free = free_count(names, 5 + statuses, ARGV[2], ARGV[5])
local want = math.max(waiting_count(KEYS[3]), tonumber(ARGV[3]))
if free < want then return 0 end
redis.call('SREM', KEYS[1], ARGV[2])
redis.call('SREM', status_key(ARGV[4], 5, rec[1]), ARGV[2])
redis.call('SREM', KEYS[4], ARGV[2])
redis.call('DEL', KEYS[2])
return 1
