-- Store one route's override and index it, atomically; optionally let it expire by itself.
--
-- KEYS[1]  override hash  <prefix>:rlo:{org:project}:<route template>
--                         (or <prefix>:rlorg:{org-overrides}:<org>:<route> for an organisation)
-- KEYS[2]  index set      the members that have an override, in KEYS[1]'s slot
-- ARGV[1]  index member, ARGV[2] max_requests, ARGV[3] expiry seconds,
-- ARGV[4]  ttl seconds    optional; without it an earlier TTL is removed (PERSIST)

redis.call("HSET", KEYS[1], "max_requests", ARGV[2], "expiry", ARGV[3])
redis.call("SADD", KEYS[2], ARGV[1])
local ttl = tonumber(ARGV[4])
if ttl and ttl > 0 then
    redis.call("EXPIRE", KEYS[1], ttl)
else
    redis.call("PERSIST", KEYS[1])
end
return 1
