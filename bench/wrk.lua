-- wrk script for scripts/bench.sh.
--   WRK_TOKENS=file  each request carries the next token of the file (cycling), one per line
--   WRK_BODY=file    POST this file as an application/json body (invocation envelope)
--   WRK_DPOP_TOKEN=file + WRK_PROOFS=file  Authorization: DPoP <the token>, and each request
--                    carries the next proof of the file (never repeated while they last)
-- Prints one machine-readable line at the end (latencies in microseconds).
local tokens_file = os.getenv("WRK_TOKENS")
local body_file = os.getenv("WRK_BODY")

if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json; charset=utf-8"
end

if tokens_file and tokens_file ~= "" then
  local tokens, i = {}, 0
  for line in io.lines(tokens_file) do
    if #line > 0 then tokens[#tokens + 1] = "Bearer " .. line end
  end
  request = function()
    i = i + 1
    if i > #tokens then i = 1 end
    wrk.headers["Authorization"] = tokens[i]
    return wrk.format()
  end
end

local dpop_token_file = os.getenv("WRK_DPOP_TOKEN")
local proofs_file = os.getenv("WRK_PROOFS")
if dpop_token_file and dpop_token_file ~= "" and proofs_file and proofs_file ~= "" then
  local f = assert(io.open(dpop_token_file, "rb"))
  wrk.headers["Authorization"] = "DPoP " .. f:read("*l")
  f:close()
  local proofs, i = {}, 0
  for line in io.lines(proofs_file) do
    if #line > 0 then proofs[#proofs + 1] = line end
  end
  request = function()
    i = i + 1
    if i > #proofs then i = 1 end
    wrk.headers["DPoP"] = proofs[i]
    return wrk.format()
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKRESULT requests=%d duration_us=%d non2xx=%d sockerr=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
