-- KEYS the credential record. ARGV the caller's address, the identity it proved ('' for none).
-- Checks the record, its binding, the caller's address and the identity it proved (ARGV[2],
-- empty for none); hands the sealed credential over and deletes the record in the same step.
-- A refusal leaves the record as it was, so a stranger cannot spend the instance's token; so
-- does a record still waiting for its credential ('pending'), which only notes it was asked.
local addr = redis.call('HGET', KEYS[1], 'addr')
if not addr then return {'unknown'} end
if addr == '' then return {'unbound'} end
if addr ~= ARGV[1] then return {'address'} end
local ident = redis.call('HGET', KEYS[1], 'ident') or ''
if ident ~= '' and ident ~= ARGV[2] then return {'identity'} end
local v = redis.call('HMGET', KEYS[1], 'runner', 'sealed')
-- A warm-pool instance's record waits for its credential: ask again (the record stays,
-- marked asked: the instance has booted, a stopped pool's may be stopped now).
if not v[2] or v[2] == '' then
  redis.call('HSET', KEYS[1], 'asked', '1')
  return {'pending'}
end
redis.call('DEL', KEYS[1])
return {'ok', v[1], v[2]}
