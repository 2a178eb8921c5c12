-- wrk script: redirects with rotating realistic browser user agents and
-- referers (the click log's bytes-per-click measurement, BENCHMARKS.md).
-- Usage: wrk -t1 -c64 -d10s -s loadtest/scripts/rotating-ua.lua http://127.0.0.1:8080/r/CODE
local oses = {
  "Windows NT 10.0; Win64; x64", "Macintosh; Intel Mac OS X 10_15_7", "X11; Linux x86_64",
  "Windows NT 6.1; Win64; x64", "X11; Ubuntu; Linux x86_64", "Macintosh; Intel Mac OS X 14_2_1",
}
local agents = {}
for _, os in ipairs(oses) do
  for v = 110, 124 do
    agents[#agents + 1] = "Mozilla/5.0 (" .. os .. ") AppleWebKit/537.36 (KHTML, like Gecko) Chrome/" .. v .. ".0.0.0 Safari/537.36"
  end
  for v = 115, 122 do
    agents[#agents + 1] = "Mozilla/5.0 (" .. os .. "; rv:" .. v .. ".0) Gecko/20100101 Firefox/" .. v .. ".0"
  end
end
for v = 15, 17 do
  for m = 0, 6 do
    agents[#agents + 1] = "Mozilla/5.0 (iPhone; CPU iPhone OS " .. v .. "_" .. m .. " like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/" .. v .. "." .. m .. " Mobile/15E148 Safari/604.1"
    agents[#agents + 1] = "Mozilla/5.0 (Linux; Android 1" .. (v - 3) .. "; SM-S91" .. m .. "B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/12" .. m .. ".0.0.0 Mobile Safari/537.36"
  end
end
local referers = {}
local sites = { "news.example.com", "blog.example.org", "www.google.com", "t.co", "www.facebook.com", "reddit.com", "deals.example.net" }
for _, site in ipairs(sites) do
  for p = 1, 20 do
    referers[#referers + 1] = "https://" .. site .. "/articles/2026/11/best-deals-of-the-week-part-" .. p .. "?utm_source=newsletter"
  end
end
local n = 0
request = function()
  n = n + 1
  local ua = agents[(n * 7919) % #agents + 1]
  local ref = referers[(n * 104729) % #referers + 1]
  return wrk.format("GET", nil, { ["User-Agent"] = ua, ["Referer"] = ref })
end
