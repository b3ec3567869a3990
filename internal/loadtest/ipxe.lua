-- wrk script: GET /ipxe for a random machine of a gentree fleet.
-- Usage: wrk -t1 -c32 -d10s --latency -s internal/loadtest/ipxe.lua http://127.0.0.1:8080
-- GROUPS (env) must match the -groups given to gentree (default 10000).
local groups = tonumber(os.getenv("GROUPS") or "10000")
math.randomseed(42)
request = function()
  local i = math.random(0, groups - 1)
  local mac = string.format("52:54:%02x:%02x:%02x:%02x", 0, 0, math.floor(i / 256) % 256, i % 256)
  return wrk.format("GET", "/ipxe?mac=" .. mac)
end
