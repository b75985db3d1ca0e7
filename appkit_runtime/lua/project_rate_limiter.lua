-- Fixed-window rate limiter for one (project, route), with an optional per-route override.
--
-- KEYS[1]  counter key   <prefix>:rl:{org:project}:<route template>
-- KEYS[2]  override key  optional, <prefix>:rlo:{org:project}:<route template>
--                        (hash: max_requests, expiry); without it the limit is ARGV's
-- ARGV[1]  max_requests  used when the override hash has no max_requests
-- ARGV[2]  expiry        window length in seconds, used when the override hash has no expiry
-- ARGV[3]  cost          optional, how many requests this call counts for (default 1)
--
-- The caller passes the organisation override (read from its in-process cache) in
-- ARGV[1..2] when there is one, else its default, so the priority project override ->
-- organisation override -> default is decided here, in one atomic step.
--
-- The cost is checked before incrementing, so a refused call uses no quota. The window is
-- opened by the first counted call (INCRBY and PEXPIRE in this one atomic script); its reset
-- comes from PTTL, never from the caller's clock.
--
-- Returns {is_over_limit (0|1), request_count, ttl_ms, effective_max_requests,
-- effective_expiry_s}.

local max_requests = tonumber(ARGV[1])
local expiry = tonumber(ARGV[2])
local cost = tonumber(ARGV[3]) or 1

if KEYS[2] then
    local override = redis.call("HMGET", KEYS[2], "max_requests", "expiry")
    if override[1] then
        max_requests = tonumber(override[1])
    end
    if override[2] then
        expiry = tonumber(override[2])
    end
end

local count = tonumber(redis.call("GET", KEYS[1])) or 0
local ttl = redis.call("PTTL", KEYS[1])

if count + cost > max_requests then
    if ttl == -1 then
        -- A counter that lost its expiry would refuse forever: give it a window again.
        redis.call("PEXPIRE", KEYS[1], expiry * 1000)
    end
    if ttl < 0 then
        ttl = expiry * 1000
    end
    return {1, count, ttl, max_requests, expiry}
end

count = redis.call("INCRBY", KEYS[1], cost)
if ttl < 0 then
    ttl = expiry * 1000
    redis.call("PEXPIRE", KEYS[1], ttl)
end
return {0, count, ttl, max_requests, expiry}
