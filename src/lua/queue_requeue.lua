-- Requeue one dead task. KEYS dead stream, stream. ARGV entry, payload.
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', 'task', ARGV[2])
return 1
