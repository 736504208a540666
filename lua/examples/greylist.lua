-- greylist.lua - greylisting (Evan Harris, 2003).
--
-- The first delivery attempt of an unknown triplet (client network,
-- sender, recipient) gets 451 4.7.1.  A retry after `delay` seconds (and
-- within `window`) passes, and the triplet is then known for `lifetime`:
-- real mail servers retry, most spam engines do not.
--
-- State lives in upesi.kv, the store: every worker of the host sees it,
-- and every host of a fleet that shares one Redis (a retry may reach
-- another MX and still pass).  Authenticated clients are never
-- greylisted.  When the store cannot answer, mail is not greylisted
-- (lua.ini store_failure = tempfail answers 451 instead).
--
-- lua.ini:   scripts = greylist.lua
-- counters:  Lua.Greylist.Deferred, Lua.Greylist.Early, Lua.Greylist.Passed

local delay = 300               -- seconds a new triplet must wait
local window = 4 * 3600         -- a retry later than this starts over
local lifetime = 36 * 24 * 3600 -- a passed triplet is known this long

-- IPv4 clients by /24, IPv6 by /64: a sender's retry may come from a
-- neighbour in the same farm.
local function network(ip)
  local net = ip:match("^(%d+%.%d+%.%d+)%.%d+$")
  if net then return net end
  return ip:lower():match("^(%x*:%x*:%x*:%x*)") or ip
end

upesi.hook("rcpt", function(conn, txn, rcpt)
  if conn.authenticated then return upesi.CONT end
  local key = ("grey:%s/%s/%s"):format(network(conn.ip),
                                       (txn.sender or ""):lower(),
                                       rcpt:lower())
  local first, err = upesi.kv.get(key)
  if err then return upesi.CONT end       -- the store is down: let it pass
  local now = upesi.time()
  if first == "passed" then
    upesi.kv.expire(key, lifetime)
    return upesi.CONT
  end
  if first == nil then
    upesi.kv.set(key, now, window)
    upesi.stat.add("Greylist.Deferred")
    return upesi.DENYSOFT, "Greylisted, please try again later", 451, "4.7.1"
  end
  if now - first < delay then
    upesi.stat.add("Greylist.Early")
    return upesi.DENYSOFT,
           ("Greylisted, please try again in %d seconds"):format(
             math.ceil(delay - (now - first))), 451, "4.7.1"
  end
  upesi.kv.set(key, "passed", lifetime)
  upesi.stat.add("Greylist.Passed")
  upesi.log("info", "greylist: " .. key .. " passed")
  return upesi.CONT
end)
