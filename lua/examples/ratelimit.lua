-- ratelimit.lua - a per-sender-domain rate limit.
--
-- At most `limit` transactions per sender domain in a fixed window of
-- `window` seconds, counted in the store: across every worker of the host
-- (store = lmdb, the default) and every host that shares one Redis
-- (store = redis://...).  Past it, MAIL FROM gets 451 4.7.1 until the
-- window ends: a legitimate sender's queue retries later.  The null
-- sender (bounces) and authenticated clients are not counted.
--
-- When the store cannot answer, the sender is not limited (mail flows);
-- lua.ini store_failure = tempfail answers 451 instead (docs/store.md).
--
-- lua.ini:   scripts = ratelimit.lua
-- counters:  Lua.RateLimit.Deferred

local limit = 100               -- transactions
local window = 3600             -- per this many seconds
-- domains that are never limited (your own, a partner's)
local exempt = { ["example.com"] = true }

upesi.hook("mail", function(conn, txn, sender)
  if conn.authenticated then return upesi.CONT end
  local domain = sender:match("@([^@]+)$")
  if not domain then return upesi.CONT end
  domain = domain:lower()
  if exempt[domain] then return upesi.CONT end
  local n = upesi.kv.incr("rate:" .. domain, 1, window)
  if not n then return upesi.CONT end     -- the store is down: not limited
  if n > limit then
    upesi.stat.add("RateLimit.Deferred")
    if n == limit + 1 then   -- one log line per window, not one per try
      upesi.log("notice", ("rate limit: %s over %d per %ds"):format(
        domain, limit, window))
    end
    return upesi.DENYSOFT,
           ("Too many messages from %s, try again later"):format(domain),
           451, "4.7.1"
  end
  return upesi.CONT
end)
