-- Quota lease for one (project, route): reserve a block of the window's remaining permits
-- for one process, which spends them in memory. Same counter, override and window as
-- project_rate_limiter.lua, so both scripts can count against one key.
--
-- KEYS[1]  counter key   <prefix>:rl:{org:project}:<route template>
-- KEYS[2]  override key  <prefix>:rlo:{org:project}:<route template>
-- ARGV[1]  max_requests  used when the override hash has no max_requests
-- ARGV[2]  expiry        window length in seconds, used when the override hash has no expiry
-- ARGV[3]  want          permits the waiting request needs (its cost): at least this or none
-- ARGV[4]  block         permits the caller would like to hold (its adaptive block size)
-- ARGV[5]  returned      unspent permits of the caller's previous lease
-- ARGV[6]  window        the window that granted them: its end, as this script returned it
--
-- Returned permits are given back first, and only to the window that counted them: a call
-- that arrives after its window rolled over must not free permits of the next one. A window
-- is named by its end in Redis's clock (TIME + PTTL, stable to a millisecond or two); two
-- windows' ends are at least a whole window (1 s or more) apart. (TIME before a write needs
-- effects replication: Redis 5 and later, where it is the default.)
-- The block granted is max(want, min(block, remaining // 8)): it shrinks as the quota runs
-- low, so processes near the limit lease one permit at a time and the counter never passes
-- max_requests. A call that cannot get `want` reserves nothing (like a refused request).
--
-- Returns {is_over_limit (0|1), counter, ttl_ms, effective_max_requests,
-- effective_expiry_s, granted, window}; the counter includes every lease still held, and
-- `window` is what the caller sends back with its unspent permits (0 when none was granted).

local max_requests = tonumber(ARGV[1])
local expiry = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local block = tonumber(ARGV[4])
local returned = tonumber(ARGV[5])
local window = tonumber(ARGV[6])

local override = redis.call("HMGET", KEYS[2], "max_requests", "expiry")
if override[1] then
    max_requests = tonumber(override[1])
end
if override[2] then
    expiry = tonumber(override[2])
end

local count = tonumber(redis.call("GET", KEYS[1])) or 0
local ttl = redis.call("PTTL", KEYS[1])
local clock = redis.call("TIME")
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

if returned > 0 and ttl > 0 and count > 0 and math.abs(now + ttl - window) < 500 then
    count = redis.call("DECRBY", KEYS[1], math.min(returned, count))
end

local remaining = max_requests - count
if want > remaining then
    if ttl == -1 then
        -- A counter that lost its expiry would refuse forever: give it a window again.
        redis.call("PEXPIRE", KEYS[1], expiry * 1000)
    end
    if ttl < 0 then
        ttl = expiry * 1000
    end
    return {1, count, ttl, max_requests, expiry, 0, 0}
end

local granted = math.max(want, math.min(block, math.floor(remaining / 8)))
count = redis.call("INCRBY", KEYS[1], granted)
if ttl < 0 then
    ttl = expiry * 1000
    redis.call("PEXPIRE", KEYS[1], ttl)
end
return {0, count, ttl, max_requests, expiry, granted, now + ttl}
