-- Store one route's override and index it, atomically.
--
-- KEYS[1]  override hash  <prefix>:rlo:{org:project}:<route template>
-- KEYS[2]  index set      <prefix>:rloi:{org:project} (the routes that have an override)
-- ARGV[1]  route template, ARGV[2] max_requests, ARGV[3] expiry seconds

redis.call("HSET", KEYS[1], "max_requests", ARGV[2], "expiry", ARGV[3])
redis.call("SADD", KEYS[2], ARGV[1])
return 1
