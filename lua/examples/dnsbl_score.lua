-- dnsbl_score.lua - DNSBL scoring with weights, in the style of Postfix's
-- postscreen_dnsbl_sites: every list is asked at once, each list that
-- lists the client adds its weight (allow lists subtract), and a total
-- at or over `threshold` refuses the client.
--
-- As in Domino, a refused client is still greeted; every MAIL FROM of the
-- session then gets 554 5.7.1 (a DENY at connect).  The score is kept in
-- the connection note "dnsbl.score" for later rules, and a DNS timeout or
-- error counts as not listed (fail open).
--
-- lua.ini:   scripts = dnsbl_score.lua
-- counters:  Lua.DNSBL.Score.Rejected

local threshold = 3
local sites = {
  -- answer: a Lua pattern the A record must match (a return code);
  -- without it any 127.0.0.0/8 answer counts.
  { zone = "zen.example",  weight = 2 },
  { zone = "bl.example",   weight = 2, answer = "^127%.0%.0%.2$" },
  { zone = "wl.example",   weight = -3 },
}

upesi.hook("connect", function(conn, txn)
  local queries = {}
  for i, site in ipairs(sites) do
    queries[i] = { "a", upesi.dns.ip_name(conn.ip, site.zone) }
  end
  local answers = upesi.dns.batch(queries)
  local score, hits = 0, {}
  for i, answer in ipairs(answers) do
    local site = sites[i]
    for _, a in ipairs(answer.records) do
      if a:find("^127%.") and (not site.answer or a:find(site.answer)) then
        score = score + site.weight
        hits[#hits + 1] = ("%s=%s*%d"):format(site.zone, a, site.weight)
        break
      end
    end
  end
  conn.notes["dnsbl.score"] = score
  if score >= threshold then
    upesi.stat.add("DNSBL.Score.Rejected")
    upesi.log("notice", ("dnsbl score %d for %s: %s"):format(
      score, conn.ip, table.concat(hits, " ")))
    return upesi.DENY,
           ("Service unavailable; client [%s] blocked using DNSBL score %d")
             :format(conn.ip, score), 554, "5.7.1"
  end
  return upesi.CONT
end)
