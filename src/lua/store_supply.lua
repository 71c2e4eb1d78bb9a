-- Counts a group's waiting jobs and free runners: KEYS waiting zset, group set, then the
-- members' keys. ARGV the members, how long a creation counts as free without its lock
-- (seconds). {-2, -2}: the members changed meanwhile.
local names = split(ARGV[1])
if not members_match(KEYS[2], names) then return {-2, -2} end
return {waiting_count(KEYS[1]), free_count(names, 3, '', ARGV[2])}
