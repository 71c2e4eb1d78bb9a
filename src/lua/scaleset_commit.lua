-- Writes fields of a scale set's state only while this holder still has the lease (fencing:
-- a holder that lost it changes nothing). KEYS the lease, the state hash. ARGV the holder's
-- token, then field, value pairs. Returns 1 when written, 0 when fenced off.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
return 1
