-- wrk script for the soak's cache hits: cycles through the requests listed in a file (one
-- per line: PATH, ACCEPT-ENCODING or "-", and the object's length), counts statuses,
-- X-Cache values and uncompressed 200 bodies whose length is none of the objects' lengths
-- (responses on a thread's connections do not come back in request order, so a body is
-- checked against the set; the objects all have different lengths), and prints them as
-- "WRK<TAB>what<TAB>name<TAB>count" lines at the end.
--
--   wrk ... -s hits.lua URL -- REQUESTS_FILE

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  reqs, lens = {}, {}
  for line in io.lines(args[1]) do
    local path, ae, len = line:match("^(%S+)%s+(%S+)%s+(%S+)$")
    local headers = {}
    if ae ~= "-" then headers["Accept-Encoding"] = ae end
    table.insert(reqs, wrk.format("GET", path, headers))
    lens[tonumber(len)] = true
  end
  n = 0
  codes, cache, badlen = {}, {}, 0
end

function request()
  n = n % #reqs + 1
  return reqs[n]
end

function response(status, headers, body)
  local k = tostring(status)
  codes[k] = (codes[k] or 0) + 1
  local x = headers["x-cache"] or headers["X-Cache"] or "(none)"
  cache[x] = (cache[x] or 0) + 1
  local ce = headers["content-encoding"] or headers["Content-Encoding"]
  if status == 200 and not ce and not lens[#body] then badlen = badlen + 1 end
end

function done(summary, latency, requests)
  local c, x, bad = {}, {}, 0
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("codes")) do c[k] = (c[k] or 0) + v end
    for k, v in pairs(t:get("cache")) do x[k] = (x[k] or 0) + v end
    bad = bad + t:get("badlen")
  end
  for k, v in pairs(c) do io.write(string.format("WRK\tstatus\t%s\t%d\n", k, v)) end
  for k, v in pairs(x) do io.write(string.format("WRK\txcache\t%s\t%d\n", k, v)) end
  io.write(string.format("WRK\tbadlen\t-\t%d\n", bad))
  local e = summary.errors
  io.write(string.format("WRK\terrors\tconnect\t%d\nWRK\terrors\tread\t%d\nWRK\terrors\twrite\t%d\nWRK\terrors\ttimeout\t%d\n",
    e.connect, e.read, e.write, e.timeout))
  io.write(string.format("WRK\ttotal\trequests\t%d\n", summary.requests))
  io.write(string.format("WRK\tlatency_ms\tp50\t%.2f\nWRK\tlatency_ms\tp99\t%.2f\nWRK\tlatency_ms\tmax\t%.2f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
