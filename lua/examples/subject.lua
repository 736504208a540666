-- subject.lua - a subject rule, the shape of a Domino server mail rule:
-- conditions on the Subject (and optionally the body), then an action.
--
-- Rules run in order; the first that matches decides.  Patterns are Lua
-- patterns over the lower-cased subject / body lines.
--   action "reject"      550 5.7.1 at the end of data
--   action "tag"         X-Subject-Rule: <name> added, delivered
--   action "quarantine"  into the quarantine (the client gets 250)
-- An X-Subject-Rule header that arrives with the message is removed
-- first, so a sender cannot forge the tag.
--
-- lua.ini:   scripts = subject.lua
-- counters:  Lua.SubjectRule.<name>

local rules = {
  { name = "pills",   subject = "v[i1]agra",   action = "reject" },
  { name = "lottery", subject = "%f[%a]lottery%f[%A]", action = "tag" },
  { name = "invoice", subject = "invoice", body = "%.exe%f[%A]",
    action = "quarantine" },
}

local function body_matches(txn, pattern)
  for line in txn:body_lines() do
    if line:lower():find(pattern) then return true end
  end
  return false
end

upesi.hook("data_post", function(conn, txn)
  txn:remove_header("X-Subject-Rule")
  local subject = (txn:header("Subject") or ""):lower()
  for _, rule in ipairs(rules) do
    if subject:find(rule.subject)
       and (not rule.body or body_matches(txn, rule.body)) then
      upesi.stat.add("SubjectRule." .. rule.name)
      upesi.log("info", ("subject rule %s: %s"):format(rule.name, rule.action))
      if rule.action == "reject" then
        return upesi.DENY, "Message rejected for policy reasons", 550, "5.7.1"
      elseif rule.action == "tag" then
        txn:add_header("X-Subject-Rule", rule.name)
      elseif rule.action == "quarantine" then
        txn:action("quarantine", "subject rule " .. rule.name)
      end
      return upesi.CONT
    end
  end
  return upesi.CONT
end)
