-- wrk script for the load bench: every request is `GET /` with `Authorization: Bearer <token>`.
--   wrk ... -s token.lua http://127.0.0.1:PORT -- TOKENS_FILE [LIMIT [START]]
-- LIMIT 1 sends the file's first token on every request (the repeated-token case); LIMIT
-- N (or none: the whole file) cycles through the first N tokens (the distinct-token
-- case), starting after the first START of them (so consecutive runs continue). The requests
-- are formatted once, in init, so the per-request client cost is the same in both cases.
local requests = {}
local count = 0
local next_index = 0

function init(args)
  local path = args[1]
  local limit = tonumber(args[2] or "0") or 0
  if path == nil then
    error("token.lua: pass the tokens file after --")
  end
  for line in io.lines(path) do
    if line ~= "" then
      count = count + 1
      requests[count] = wrk.format("GET", "/", { ["Authorization"] = "Bearer " .. line })
      if limit > 0 and count >= limit then
        break
      end
    end
  end
  if count == 0 then
    error("token.lua: no tokens in " .. path)
  end
  next_index = (tonumber(args[3] or "0") or 0) % count
end

function request()
  next_index = next_index % count + 1
  return requests[next_index]
end
